"""Export what an image view shows: a PNG or JPEG file, or the clipboard.

"With annotations" is the view as it is on screen: the image, its shutter, overlay planes,
the saliency overlay, region labels, measurements and the corner text. "Without" keeps the
image and its display shutter only (the shutter is part of how the file asks to be shown).
The picture is the view's viewport at screen resolution, as the reader sees it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from medviewer.errors import UserError

if TYPE_CHECKING:
    from medviewer.gui.view_host import ExportedView

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
JPEG_QUALITY = 92


def render_view(view: ExportedView, annotations: bool = True) -> QImage:
    """The viewport's picture; without annotations everything over the image is hidden."""
    if view.instance is None:
        raise UserError("There is no image to export: open one first.")
    hidden = []
    if not annotations:
        keep = set(view.display_planes.shutter_items)
        for item in view.image_item.childItems():
            if item.isVisible() and item not in keep:
                item.setVisible(False)
                hidden.append(item)
        corner = view.corner_overlay
        if corner is not None and corner.isVisible():
            corner.setVisible(False)
            hidden.append(corner)
    try:
        image = view.graphics_view.viewport().grab().toImage()
    finally:
        for item in hidden:
            item.setVisible(True)
    return image.convertToFormat(QImage.Format.Format_RGB888)


def save_view(view: ExportedView, path: str | os.PathLike, annotations: bool = True) -> Path:
    """Write the view to ``path`` (.png, .jpg or .jpeg); UserError naming the file if not."""
    target = Path(path)
    image_format = FORMATS.get(target.suffix.lower())
    if image_format is None:
        raise UserError(f"Cannot save the view as {target}: the name must end in .png, .jpg "
                        f"or .jpeg.")
    if not target.parent.is_dir():
        raise UserError(f"Cannot save the view as {target}: the folder {target.parent} "
                        f"does not exist.")
    image = render_view(view, annotations)
    quality = JPEG_QUALITY if image_format == "JPEG" else -1
    if not image.save(str(target), image_format, quality):
        reason = "it is not writable" if not os.access(target.parent, os.W_OK) \
            else "the file could not be written"
        raise UserError(f"Cannot save the view as {target}: {reason}.")
    return target


def copy_view(view: ExportedView, annotations: bool = True) -> QImage:
    """Put the view on the clipboard as an image; returns what was copied."""
    image = render_view(view, annotations)
    QApplication.clipboard().setImage(image)
    return image
