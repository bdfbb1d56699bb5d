"""Batch inference over files and folders: results as they arrive, errors as results, cancel."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from medviewer.dicom.reader import open_instance
from medviewer.inference.audit import AuditLog
from medviewer.inference.predict import (
    PredictionReady, predict_instance, predict_job, predict_paths)
from medviewer.inference.runtime import get_session
from medviewer.jobs import CancelFlag, JobCancelled, Progress, run_to_end
from tests.inference.conftest import copy_into, write_grey_png


def _display_mean(path) -> float:
    """What the mean model must answer: the mean of the displayed image resized to 16x16."""
    from medviewer.inference.preprocess import resize_plane

    display = open_instance(path).display_frame().astype(np.float32) / 255.0
    return float(resize_plane(display, 16, 16).mean())


def test_folder_with_a_broken_file_gives_results_and_one_error(install, tmp_path, kermany_images,
                                                               broken_dicom):
    entry = install("mean", name="chest")
    folder = tmp_path / "study"
    copied = copy_into(folder, kermany_images[:4])
    copy_into(folder / "sub", [broken_dicom])
    missing = tmp_path / "gone.dcm"

    events = []
    job = predict_job([folder, missing], entry, batch_size=3, workers=2, device="cpu")
    results = run_to_end(job, events.append)

    assert len(results) == 6
    by_name = {r.path.name: r for r in results}
    broken = by_name["CT1_truncated.dcm"]
    assert not broken.ok and broken.error.startswith(f"Cannot open {folder / 'sub'}")
    assert "truncated" in broken.error and broken.scores == []
    assert by_name["gone.dcm"].error == f"Cannot open {missing}: the file does not exist."
    for path in copied:
        result = by_name[path.name]
        assert result.ok and result.provider == "CPUExecutionProvider"
        assert result.model_name == "chest" and result.model_sha256 == entry.card.sha256
        assert result.input_uid.startswith("sha256:") and len(result.input_uid) == 71
        assert result.score("finding").probability == pytest.approx(_display_mean(path), abs=1e-5)
        finding = result.score("finding")
        assert finding.threshold == 0.5 and finding.flagged == (finding.probability >= 0.5)
        assert result.score("normal").flagged is False  # no operating point: never flagged
        assert result.offered == (["finding"] if finding.flagged else [])  # no "no finding" class
        assert result.inference_ms > 0

    ready = [e for e in events if isinstance(e, PredictionReady)]
    assert sorted(e.index for e in ready) == list(range(6))
    assert all(results[e.index] is e.prediction for e in ready)
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[-1].done == progress[-1].total == 6

    rows = AuditLog().rows()
    assert len(rows) == 4  # errors made no prediction, so nothing to audit
    assert {r["input_uid"] for r in rows} == {by_name[p.name].input_uid for p in copied}


def test_batching_gives_the_same_answers_as_one_by_one(install, kermany_images):
    entry = install("mean")
    session = get_session(entry, device="cpu")
    batched = predict_paths(kermany_images, session, batch_size=4, audit=False)
    singles = [predict_instance(session, open_instance(p), audit=False) for p in kermany_images]
    assert [r.path for r in batched] == kermany_images  # input order kept
    for a, b in zip(batched, singles):
        assert [s.probability for s in a.scores] == pytest.approx([s.probability for s in b.scores],
                                                                  abs=1e-6)


def test_dicom_inputs_are_identified_by_sop_instance_uid(install, shared_data):
    path = shared_data / "dicom" / "fo-dicom" / "CR-MONO1-10-chest"
    [result] = predict_paths([path], install("mean"), device="cpu")
    assert result.ok
    assert result.input_uid == open_instance(path).sop_instance_uid != ""


def test_cancel_stops_between_batches_and_leaves_no_threads(install, tmp_path):
    entry = install("mean")
    images = [write_grey_png(tmp_path / "imgs" / f"{i:02d}.png",
                             np.full((16, 16), i * 10, np.uint8)) for i in range(12)]
    cancel = CancelFlag()
    seen = []
    job = predict_job(images, entry, batch_size=2, cancel=cancel, device="cpu")
    with pytest.raises(JobCancelled):
        for event in job:
            if isinstance(event, PredictionReady):
                seen.append(event.index)
                cancel.cancel()
    assert seen == [0, 1]  # the batch in flight finished, nothing after it
    assert not [t for t in threading.enumerate() if t.name.startswith("medviewer-prep")]
    assert len(AuditLog().rows()) == 2


def test_closing_the_job_early_shuts_its_pool(install, kermany_images):
    job = predict_job(kermany_images, install("mean"), batch_size=2, device="cpu")
    for event in job:
        if isinstance(event, PredictionReady):
            break
    job.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("medviewer-prep")]
