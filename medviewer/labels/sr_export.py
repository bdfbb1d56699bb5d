"""Labels export to DICOM: each reader's labels and regions on an image as one SR
(``medviewer.dicom.sr.write_label_report``), so they travel with the study to a PACS.

Only DICOM images whose file is still where it was labelled can be referenced; the others
are skipped (and logged). One new series per study holds the reports of one export.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from medviewer.labels.errors import ExportError
from medviewer.labels.store import LabelStore

log = logging.getLogger(__name__)


def export_dicom_sr(store: LabelStore, label_set: str, path: str | os.PathLike) -> int:
    """Write the reports into the folder ``path``; returns how many were written."""
    from pydicom import dcmread
    from pydicom.uid import generate_uid

    from medviewer.dicom.sr import RegionMark, SrError, write_label_report

    out_dir = Path(path)
    labels = store.current_labels(label_set)
    regions = store.regions(label_set)
    per_image: dict[tuple[str, str], tuple[list[str], list[RegionMark]]] = {}
    for label in labels:
        per_image.setdefault((label.image_key, label.reader), ([], []))[0].extend(label.classes)
    for region in regions:
        g = region.geometry
        mark = RegionMark(region.class_name, region.shape, g.x, g.y, g.width, g.height,
                          tuple(g.points or ()), region.frame)
        per_image.setdefault((region.image_key, region.reader), ([], []))[1].append(mark)
    images = store.images({key for key, _reader in per_image})
    series: dict[str, str] = {}
    written = skipped = 0
    for (key, reader), (classes, marks) in sorted(per_image.items()):
        image = images.get(key)
        source = Path(image.path) if image is not None and image.path else None
        if image is None or image.sop_instance_uid is None or source is None \
                or not source.is_file():
            skipped += 1
            continue
        try:
            study_uid = str(dcmread(source, stop_before_pixels=True,
                                    specific_tags=["StudyInstanceUID"]).StudyInstanceUID)
            write_label_report(source, reader, label_set, classes, marks, out_dir,
                               series_uid=series.setdefault(study_uid, generate_uid()),
                               instance_number=written + 1)
        except (SrError, OSError, AttributeError, ValueError) as exc:
            log.warning("Label report for one image skipped: %s", exc)
            skipped += 1
            continue
        written += 1
    if not written:
        raise ExportError(f"No DICOM report was written to {out_dir}: none of the "
                          f"{len(per_image)} labelled images of '{label_set}' is a DICOM "
                          f"image still at the path where it was labelled.")
    if skipped:
        log.warning("%d of %d label reports skipped (not DICOM, or the file moved)", skipped,
                    skipped + written)
    return written
