"""`medviewer info` and `medviewer render`: the viewer's capabilities, scriptable.

``info PATH`` indexes a file, folder or DICOMDIR exactly as the study browser does and lists
patients, studies, series and instances, then every file that could not be read.
``render FILE`` writes one frame as the viewer displays it (default VOI unless --window).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from medviewer.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    info = subparsers.add_parser(
        "info", help="list the patients, studies, series and images in a file, folder or DICOMDIR",
        description="Index PATH (a DICOM file, a PNG/JPEG X-ray, a folder searched recursively, "
                    "or a DICOMDIR) and list what it holds, then every file that could not be "
                    "read and why. Exits 0 when at least one image was found, even if some "
                    "files are broken.")
    info.add_argument("path", metavar="PATH", type=Path)
    info.add_argument("--json", action="store_true", help="print the catalog as JSON")
    info.add_argument("--no-cache", action="store_true",
                      help="index from scratch in a throw-away cache (the user cache is untouched)")
    info.add_argument("--follow-links", action="store_true",
                      help="follow symbolic links that lead out of the folder (and linked "
                           "folders); by default such links are listed, not opened")
    info.set_defaults(handler=run_info)

    render = subparsers.add_parser(
        "render", help="write one frame to a PNG exactly as the viewer displays it",
        description="Write FILE's frame as displayed: the file's first window (or VOI LUT, or "
                    "the full data range) unless --window is given, MONOCHROME1 shown "
                    "inverted, as an 8-bit grey PNG (RGB for colour images).")
    render.add_argument("file", metavar="FILE", type=Path)
    render.add_argument("--frame", type=int, default=1, metavar="N",
                        help="frame number, counting from 1 (default: 1)")
    render.add_argument("--window", type=float, nargs=2, metavar=("CENTER", "WIDTH"),
                        help="window centre and width in modality units (e.g. HU for CT) "
                             "instead of the file's default")
    render.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.png",
                        help="the PNG file to write")
    render.add_argument("--json", action="store_true", help="describe what was written as JSON")
    render.set_defaults(handler=run_render)


@contextmanager
def _quiet_parser_warnings(verbose: bool) -> Iterator[None]:
    """pydicom warns about every odd value it meets; the per-file error list says what matters."""
    pydicom_log = logging.getLogger("pydicom")
    old_level = pydicom_log.level
    with warnings.catch_warnings():
        if not verbose:
            warnings.simplefilter("ignore")
            pydicom_log.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            pydicom_log.setLevel(old_level)


# ---------------------------------------------------------------- info


def _show_path(path: Path, root: Path) -> str:
    base = root if root.is_dir() else root.parent
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def _summary(catalog: Any) -> dict[str, int]:
    studies = [st for p in catalog.patients for st in p.studies]
    series = [se for st in studies for se in st.series]
    return {
        "patients": len(catalog.patients),
        "studies": len(studies),
        "series": len(series),
        "instances": sum(len(se.instances) for se in series),
        "errors": len(catalog.errors),
        "ignored": len(catalog.ignored),
        "from_cache": catalog.from_cache,
    }


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {plural or word + 's'}"


def _print_catalog(catalog: Any, counts: dict[str, int]) -> None:
    root = catalog.root
    print(f"{root}: {_plural(counts['patients'], 'patient')}, "
          f"{_plural(counts['studies'], 'study', 'studies')}, "
          f"{_plural(counts['series'], 'series', 'series')}, "
          f"{_plural(counts['instances'], 'instance')}")
    for patient in catalog.patients:
        details = [f"ID {patient.patient_id or '(none)'}"]
        if patient.birth_date:
            details.append(f"born {patient.birth_date}")
        if patient.sex:
            details.append(f"sex {patient.sex}")
        print(f"\nPatient {patient.name or '(no name)'}  [{', '.join(details)}]")
        for study in patient.studies:
            parts = [study.date or "(no date)"]
            if study.description:
                parts.append(f'"{study.description}"')
            if study.accession_number:
                parts.append(f"accession {study.accession_number}")
            print(f"  Study {'  '.join(parts)}  uid {study.uid or '(none)'}")
            for series in study.series:
                number = series.number if series.number is not None else "-"
                description = f' "{series.description}"' if series.description else ""
                print(f"    Series {number} {series.modality or '??'}{description}: "
                      f"{_plural(len(series.instances), 'instance')}")
                for inst in series.instances:
                    num = f"#{inst.instance_number}" if inst.instance_number is not None else "#-"
                    size = f"{inst.columns}x{inst.rows}" if inst.rows else "no image"
                    frames = f", {inst.n_frames} frames" if inst.n_frames > 1 else ""
                    photometric = f" {inst.photometric}" if inst.photometric else ""
                    print(f"      {num:>5}  {size}{frames}{photometric}  "
                          f"{_show_path(inst.path, root)}")
    if catalog.errors:
        print(f"\n{_plural(len(catalog.errors), 'file')} could not be read:")
        for error in catalog.errors:
            print(f"  {error.reason}")
    if catalog.ignored:
        suffixes = Counter(p.suffix.lower() or p.name for p in catalog.ignored)
        kinds = ", ".join(f"{name} ({n})" for name, n in suffixes.most_common(8))
        what = ("file that is not an image" if len(catalog.ignored) == 1
                else "files that are not images")
        print(f"\nIgnored {len(catalog.ignored)} {what}: {kinds}")
    if catalog.from_cache:
        print(f"\n({counts['from_cache']} of the files were unchanged since the last index and "
              "came from the cache)")


def _catalog_json(catalog: Any, counts: dict[str, int]) -> dict[str, Any]:
    data = dataclasses.asdict(catalog)
    data["summary"] = counts
    return data


def run_info(args: argparse.Namespace) -> int:
    from medviewer.dicom.catalog import index_path
    from medviewer.jobs import Progress, run_to_end

    path: Path = args.path
    if not path.exists():
        raise UserError(f"Cannot open {path}: it does not exist.")
    show_progress = sys.stderr.isatty() and not args.json

    def on_event(event: object) -> None:
        if show_progress and isinstance(event, Progress) and event.total:
            print(f"\r{event.message}", end="", file=sys.stderr, flush=True)

    with _quiet_parser_warnings(getattr(args, "verbose", False)):
        if args.no_cache:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="medviewer-index-") as scratch:
                catalog = run_to_end(index_path(path, cache_dir=Path(scratch),
                                                follow_links=args.follow_links), on_event)
        else:
            catalog = run_to_end(index_path(path, follow_links=args.follow_links), on_event)
    if show_progress:
        print(file=sys.stderr)
    counts = _summary(catalog)
    nothing_read = counts["instances"] == 0
    if nothing_read and counts["errors"] == 1 and not path.is_dir():
        raise UserError(catalog.errors[0].reason)  # one file: its own sentence says it all
    if args.json:
        from medviewer.commands.output import print_json

        print_json(_catalog_json(catalog, counts))
    else:
        _print_catalog(catalog, counts)
    if nothing_read:
        if counts["errors"]:
            raise UserError(f"Nothing could be read in {path}: all "
                            f"{_plural(counts['errors'], 'file')} failed (reasons listed above).")
        raise UserError(f"Nothing could be read in {path}: it holds no DICOM, PNG or JPEG files.")
    return 0


# ---------------------------------------------------------------- render


def run_render(args: argparse.Namespace) -> int:
    from PIL import Image

    from medviewer.dicom import pixels
    from medviewer.dicom.reader import open_instance
    from medviewer.files import check_output_file, check_output_path, os_error_reason

    path: Path = args.file
    output: Path = args.output
    if not path.exists():
        raise UserError(f"Cannot open {path}: it does not exist.")
    if args.frame < 1:
        raise UserError(f"Cannot render {path}: frame numbers start at 1, not {args.frame}.")
    window = None
    if args.window is not None:
        center, width = args.window
        if not (math.isfinite(center) and math.isfinite(width)):
            raise UserError(f"Cannot render {path}: the window centre and width must be "
                            f"finite numbers, not {center:g} and {width:g}.")
        if not width > 0:
            raise UserError(f"Cannot render {path}: the window width must be positive, "
                            f"not {width:g}.")
        window = pixels.Window(center, width, "LINEAR", "Command line")
    check_output_file(output)
    with _quiet_parser_warnings(getattr(args, "verbose", False)):
        instance = open_instance(path)
        frame = args.frame - 1
        image = instance.display_frame(frame, window)
        voi = window if window is not None else instance.default_voi(frame)
    mode = "RGB" if image.ndim == 3 else "L"
    try:
        check_output_path(output)  # nothing may have taken its place meanwhile
        Image.fromarray(image, mode=mode).save(output, format="PNG")
    except OSError as exc:
        raise UserError(f"Cannot write {output}: {os_error_reason(exc)}.") from None
    voi_text = voi.describe() if voi is not None else "none (colour image shown as stored)"
    described = {
        "input": str(path),
        "output": str(output),
        "frame": args.frame,
        "frames": instance.n_frames,
        "rows": int(image.shape[0]),
        "columns": int(image.shape[1]),
        "mode": "RGB" if mode == "RGB" else "grey",
        "voi": voi_text,
        "inverted": instance.inverted,
    }
    if args.json:
        from medviewer.commands.output import print_json

        print_json(described)
    else:
        inverted = ", inverted as the file asks (MONOCHROME1)" if instance.inverted else ""
        print(f"Wrote {output}: frame {args.frame} of {instance.n_frames}, "
              f"{described['columns']}x{described['rows']} {described['mode']}, "
              f"VOI {voi_text}{inverted}")
    return 0
