"""AI reads as DICOM SRs (the workflow ``predict --sr`` and a PACS send share).

One new series per source study holds the reports of one run; inputs that are not DICOM
images (PNG/JPEG, unreadable files, failed reads) get no report and are counted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class ReportsWritten:
    paths: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (input, why)


def write_ai_reports(predictions: Sequence[Any], out_dir: Path) -> ReportsWritten:
    """One SR per successful prediction of a DICOM image (``inference.predict.Prediction``)."""
    from pydicom.uid import generate_uid

    from medviewer.dicom.reader import LoadError, read_header

    from medviewer.dicom.sr import Finding, ModelIdentity, SrError, write_ai_report

    result = ReportsWritten()
    series: dict[str, str] = {}
    for prediction in predictions:
        if not prediction.ok:
            result.skipped.append((prediction.path, prediction.error or "no result"))
            continue
        if prediction.input_uid.startswith("sha256:"):
            result.skipped.append((prediction.path, "not a DICOM image"))
            continue
        findings = [Finding(s.name, s.probability, s.threshold, s.flagged, s.method)
                    for s in prediction.scores]
        model = ModelIdentity(prediction.model_name, prediction.model_version,
                              prediction.model_sha256)
        try:
            # Opened as the viewer opens it (a file without a preamble is not refused).
            study_uid = str(read_header(prediction.path).StudyInstanceUID)
            path = write_ai_report(prediction.path, findings, model, out_dir,
                                   series_uid=series.setdefault(study_uid, generate_uid()),
                                   instance_number=len(result.paths) + 1)
        except (SrError, LoadError, OSError, AttributeError, ValueError) as exc:
            result.skipped.append((prediction.path, str(exc)))
            continue
        result.paths.append(path)
    return result
