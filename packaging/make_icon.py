"""Draw MedViewer's app icon with Pillow: resources/icons/medviewer.{png,ico,icns}.

A dark rounded square with a stylised chest X-ray (two lung fields and a spine) under a
blue magnifier ring. Run it again after changing the drawing; the files are committed.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

ICONS_DIR = Path(__file__).resolve().parent.parent / "resources" / "icons"
SIZE = 1024


def draw(size: int = SIZE) -> Image.Image:
    scale = size / 1024
    icon = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    canvas = ImageDraw.Draw(icon)
    canvas.rounded_rectangle((40 * scale, 40 * scale, 984 * scale, 984 * scale),
                             radius=180 * scale, fill=(32, 36, 44, 255))
    lungs = Image.new("L", (size, size), 0)
    lung_draw = ImageDraw.Draw(lungs)
    lung_draw.ellipse((230 * scale, 220 * scale, 490 * scale, 800 * scale), fill=210)
    lung_draw.ellipse((534 * scale, 220 * scale, 794 * scale, 800 * scale), fill=210)
    lung_draw.rectangle((482 * scale, 170 * scale, 542 * scale, 860 * scale), fill=255)
    for rib in range(6):
        y = (300 + rib * 85) * scale
        lung_draw.arc((180 * scale, y - 60 * scale, 844 * scale, y + 120 * scale), 200, 340,
                      fill=255, width=max(1, int(14 * scale)))
    lungs = lungs.filter(ImageFilter.GaussianBlur(10 * scale))
    icon.paste((225, 230, 235, 255), (0, 0), lungs)
    canvas = ImageDraw.Draw(icon)
    blue = (42, 140, 230, 255)
    canvas.ellipse((520 * scale, 520 * scale, 860 * scale, 860 * scale), outline=blue,
                   width=max(2, int(46 * scale)))
    canvas.line((820 * scale, 820 * scale, 940 * scale, 940 * scale), fill=blue,
                width=max(2, int(70 * scale)))
    return icon


def main() -> None:
    ICONS_DIR.mkdir(parents=True, exist_ok=True)
    icon = draw()
    icon.resize((256, 256), Image.Resampling.LANCZOS).save(ICONS_DIR / "medviewer.png")
    icon.save(ICONS_DIR / "medviewer.ico", sizes=[(16, 16), (32, 32), (48, 48), (64, 64),
                                                   (128, 128), (256, 256)])
    icon.save(ICONS_DIR / "medviewer.icns")
    print(f"Wrote icons to {ICONS_DIR}")


if __name__ == "__main__":
    main()
