"""Export of labels (CSV, MedViewer JSON, COCO-style JSON for regions, DICOM SR) and of
measurements and annotations (CSV, JSON).

Formats are documented in docs/labels-format.md. Exports are written atomically: a
temporary file in the target's folder, fsynced, then renamed over the target, so a failure
leaves any previous file untouched. CSV cells that a spreadsheet would run as formulas are
neutralised (``medviewer/csv_safety.py``); ``labels/io.py``'s import restores them.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from medviewer import csv_safety
from medviewer.files import check_output_path, os_error_reason
from medviewer.labels.durable_files import fsync_dir
from medviewer.labels.errors import ExportError
from medviewer.labels.sr_export import export_dicom_sr
from medviewer.labels.store import ImageRef, LabelStore, now_iso
from medviewer.paths import new_file_mode

JSON_FORMAT = "medviewer-labels"
JSON_FORMAT_VERSION = 1
CSV_COLUMNS = ("path", "label", "reader", "image_key", "sop_instance_uid", "content_hash",
               "patient_id", "source", "note", "labelled_at")
# ---------------------------------------------------------------- atomic writing


@contextmanager
def atomic_writer(path: str | os.PathLike, *, newline: str | None = None) -> Iterator[IO[str]]:
    """Write a text file so that it is either complete or not there (the old one stays).

    Raises :class:`ExportError` naming the file when it cannot be written.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        check_output_path(target)  # never rename over a folder, a pipe or a device
        fd, temp_name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise ExportError(f"Cannot write {target}: {os_error_reason(exc)}.") from None
    temp = Path(temp_name)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, new_file_mode())  # an export is shared: not mkstemp's 0600
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
        fsync_dir(folder)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise ExportError(f"Cannot write {target}: {os_error_reason(exc)}; any previous file "
                          f"there is unchanged.") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- export


def export_csv(store: LabelStore, label_set: str, path: str | os.PathLike) -> int:
    """One row per (image, reader, class); returns the number of rows written."""
    labels = store.current_labels(label_set)
    images = store.images(label.image_key for label in labels)
    rows = 0
    with atomic_writer(path, newline="") as handle:
        writer = csv_safety.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for label in labels:
            image = images.get(label.image_key) or ImageRef(label.image_key)
            for class_name in label.classes:
                writer.writerow([image.path or "", class_name, label.reader, image.key,
                                 image.sop_instance_uid or "", image.content_hash or "",
                                 image.patient_id or "", label.source, label.note or "",
                                 label.labelled_at])
                rows += 1
    return rows


def export_json(store: LabelStore, label_set: str, path: str | os.PathLike) -> int:
    """The MedViewer JSON format (labels and regions per image); returns images written."""
    document = labels_document(store, label_set)
    with atomic_writer(path) as handle:
        json.dump(document, handle, indent=1, ensure_ascii=False)
        handle.write("\n")
    return len(document["images"])


def labels_document(store: LabelStore, label_set: str) -> dict:
    current_set = store.label_set(label_set)
    labels = store.current_labels(label_set)
    regions = store.regions(label_set)
    keys = list(dict.fromkeys([lab.image_key for lab in labels]
                              + [reg.image_key for reg in regions]))
    images = store.images(keys)
    by_key: dict[str, dict] = {}
    for key in sorted(keys):
        image = images.get(key) or ImageRef(key)
        by_key[key] = {"image_key": key, "sop_instance_uid": image.sop_instance_uid,
                       "content_hash": image.content_hash, "path": image.path,
                       "patient_id": image.patient_id, "width": image.width,
                       "height": image.height, "labels": [], "regions": []}
    for label in labels:
        by_key[label.image_key]["labels"].append({
            "reader": label.reader, "classes": list(label.classes), "source": label.source,
            "note": label.note, "ai_classes": list(label.ai_classes)
            if label.ai_classes is not None else None, "labelled_at": label.labelled_at})
    for region in regions:
        by_key[region.image_key]["regions"].append({
            "id": region.id, "reader": region.reader, "class": region.class_name,
            "shape": region.shape, "x": region.geometry.x, "y": region.geometry.y,
            "width": region.geometry.width, "height": region.geometry.height,
            "points": [list(p) for p in region.geometry.points]
            if region.shape == "polygon" else None,
            "frame": region.frame, "source": region.source, "note": region.note,
            "created_at": region.created_at, "updated_at": region.updated_at})
    return {"format": JSON_FORMAT, "version": JSON_FORMAT_VERSION, "exported_at": now_iso(),
            "label_set": {"name": current_set.name, "classes": list(current_set.classes),
                          "multi_label": current_set.multi_label,
                          "description": current_set.description},
            "images": list(by_key.values())}


def export_coco(store: LabelStore, label_set: str, path: str | os.PathLike) -> int:
    """Regions as COCO-style object annotations; returns the number of annotations."""
    document = coco_document(store, label_set)
    with atomic_writer(path) as handle:
        json.dump(document, handle, indent=1, ensure_ascii=False)
        handle.write("\n")
    return len(document["annotations"])


def coco_document(store: LabelStore, label_set: str) -> dict:
    current_set = store.label_set(label_set)
    regions = store.regions(label_set)
    images = store.images(r.image_key for r in regions)
    category_ids = {name: i + 1 for i, name in enumerate(current_set.classes)}
    image_ids: dict[str, int] = {}
    coco_images = []
    for key in sorted({r.image_key for r in regions}):
        image = images.get(key) or ImageRef(key)
        image_ids[key] = len(image_ids) + 1
        coco_images.append({"id": image_ids[key], "file_name": image.path or "",
                            "width": image.width, "height": image.height,
                            "image_key": key, "sop_instance_uid": image.sop_instance_uid,
                            "content_hash": image.content_hash})
    annotations = []
    for region in regions:
        g = region.geometry
        if region.shape == "polygon":
            segmentation = [[c for point in g.points for c in point]]
            area = _polygon_area(g.points)
        elif region.shape == "ellipse":
            outline = _ellipse_outline(g.x, g.y, g.width, g.height)
            segmentation = [[c for point in outline for c in point]]
            area = math.pi * g.width * g.height / 4
        else:
            segmentation = [[g.x, g.y, g.x + g.width, g.y, g.x + g.width, g.y + g.height,
                             g.x, g.y + g.height]]
            area = g.width * g.height
        annotations.append({
            "id": region.id, "image_id": image_ids[region.image_key],
            "category_id": category_ids[region.class_name],
            "bbox": [g.x, g.y, g.width, g.height], "area": area, "iscrowd": 0,
            "segmentation": segmentation,
            "attributes": {"shape": region.shape, "reader": region.reader,
                           "frame": region.frame, "source": region.source,
                           "note": region.note}})
    return {"info": {"description": f"MedViewer regions of label set '{current_set.name}'",
                     "date_created": now_iso(), "version": "1.0"},
            "images": coco_images, "annotations": annotations,
            "categories": [{"id": i, "name": n, "supercategory": current_set.name}
                           for n, i in category_ids.items()]}


def _polygon_area(points: tuple[tuple[float, float], ...]) -> float:
    twice = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1]))
    return abs(twice) / 2


def _ellipse_outline(x: float, y: float, width: float, height: float,
                     n: int = 32) -> list[tuple[float, float]]:
    cx, cy, rx, ry = x + width / 2, y + height / 2, width / 2, height / 2
    return [(round(cx + rx * math.cos(2 * math.pi * i / n), 3),
             round(cy + ry * math.sin(2 * math.pi * i / n), 3)) for i in range(n)]


# What each export format writes, and what its count counts (CLI and GUI alike).
EXPORTERS = {"csv": (export_csv, "rows"), "json": (export_json, "images"),
             "coco": (export_coco, "regions")}
EXPORTERS["dicom-sr"] = (export_dicom_sr, "reports")  # OUTPUT is a folder (labels/sr_export.py)


# ---------------------------------------------------------------- measurement export

MEASUREMENTS_FORMAT = "medviewer-measurements"
MEASUREMENTS_FORMAT_VERSION = 1
MEASUREMENT_CSV_COLUMNS = ("path", "image_key", "sop_instance_uid", "content_hash",
                           "patient_id", "frame", "reader", "id", "kind", "label", "text",
                           "points", "pixel_spacing_row_mm", "pixel_spacing_column_mm",
                           "spacing_source", "created_at", "updated_at")


def measurements_document(store: LabelStore, *, image_key: str | None = None,
                          reader: str | None = None) -> dict:
    """Measurements per image (all, or one image's / one reader's) as MedViewer JSON."""
    measurements = store.measurements(image_key, reader=reader)
    images = store.images(m.image_key for m in measurements)
    by_key: dict[str, dict] = {}
    for m in measurements:
        if m.image_key not in by_key:
            image = images.get(m.image_key) or ImageRef(m.image_key)
            by_key[m.image_key] = {
                "image_key": m.image_key, "sop_instance_uid": image.sop_instance_uid,
                "content_hash": image.content_hash, "path": image.path,
                "patient_id": image.patient_id, "width": image.width,
                "height": image.height, "measurements": []}
        by_key[m.image_key]["measurements"].append({
            "id": m.id, "reader": m.reader, "kind": m.kind, "frame": m.frame,
            "points": [list(p) for p in m.points],
            "pixel_spacing": list(m.pixel_spacing) if m.pixel_spacing else None,
            "spacing_source": m.spacing_source, "label": m.label, "text": m.text,
            "values": dict(m.values), "created_at": m.created_at,
            "updated_at": m.updated_at})
    return {"format": MEASUREMENTS_FORMAT, "version": MEASUREMENTS_FORMAT_VERSION,
            "exported_at": now_iso(), "images": list(by_key.values())}


def export_measurements_json(store: LabelStore, path: str | os.PathLike, *,
                             image_key: str | None = None, reader: str | None = None) -> int:
    """Write :func:`measurements_document`; returns the number of measurements."""
    document = measurements_document(store, image_key=image_key, reader=reader)
    with atomic_writer(path) as handle:
        json.dump(document, handle, indent=1, ensure_ascii=False)
        handle.write("\n")
    return sum(len(image["measurements"]) for image in document["images"])


def export_measurements_csv(store: LabelStore, path: str | os.PathLike, *,
                            image_key: str | None = None, reader: str | None = None) -> int:
    """One row per measurement: the fixed columns, then one column per value name found
    (sorted; ``value_<name>`` where a name is already a fixed column). Returns the rows."""
    document = measurements_document(store, image_key=image_key, reader=reader)
    names = sorted({name for image in document["images"]
                    for m in image["measurements"] for name in m["values"]})
    value_columns = [f"value_{n}" if n in MEASUREMENT_CSV_COLUMNS else n for n in names]
    rows = 0
    with atomic_writer(path, newline="") as handle:
        writer = csv_safety.writer(handle)
        writer.writerow([*MEASUREMENT_CSV_COLUMNS, *value_columns])
        for image in document["images"]:
            for m in image["measurements"]:
                spacing = m["pixel_spacing"] or ("", "")
                writer.writerow([
                    image["path"] or "", image["image_key"], image["sop_instance_uid"] or "",
                    image["content_hash"] or "", image["patient_id"] or "", m["frame"],
                    m["reader"], m["id"], m["kind"], m["label"] or "", m["text"] or "",
                    json.dumps(m["points"], separators=(",", ":")), spacing[0], spacing[1],
                    m["spacing_source"], m["created_at"], m["updated_at"],
                    *(_csv_value(m["values"].get(n)) for n in names)])
                rows += 1
    return rows


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, (list, dict, bool)) else value


# Measurement export formats (``medviewer labels export --measurements``); counts measurements.
MEASUREMENT_EXPORTERS = {"csv": export_measurements_csv, "json": export_measurements_json}
