"""Batch inference: decode and preprocess the next images while the current batch runs.

:func:`predict_job` is a job generator (see ``medviewer.jobs``): it yields
:class:`~medviewer.jobs.Progress` and one :class:`PredictionReady` per image as soon as its
result exists, checks the cancel flag between batches and returns every
:class:`Prediction` in input order. A file that cannot be read becomes a Prediction carrying
the error sentence, never a crash.

:func:`make_prediction` turns one row of model output into a :class:`Prediction`: the
operating points in force (the card's, or the site's adopted ones), the one decision rule
(``decision.decide``), the intended-use check (``scope``) and the out-of-distribution score
(``ood``). Every prediction is published on ``prediction.prediction_made`` (the audit log
records it) unless the caller asks otherwise.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Generator, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.dicom.reader import Instance, open_instance
from medviewer.errors import UserError
from medviewer.inference.decision import decide
from medviewer.inference.model_card import ModelEntry
from medviewer.inference.prediction import (  # noqa: F401 - re-exported for callers
    ClassScore, Prediction, prediction_made, publish)
from medviewer.inference.preprocess import PreparedInput, prepare_instance
from medviewer.inference.runtime import ModelSession, RunOutput, get_session
from medviewer.inference.scope import ScopeCheck, check_scope
from medviewer.jobs import CancelFlag, Progress

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 8
DEFAULT_WORKERS = 2


@dataclass(frozen=True)
class PredictionReady:
    """Event: the result for input number ``index`` is in."""

    index: int
    prediction: Prediction


def input_uid(instance: Instance) -> str:
    """What identifies the input in results and the audit log (no names, no paths)."""
    if instance.content_hash:
        return f"sha256:{instance.content_hash}"
    return instance.sop_instance_uid or "unknown"


def ood_scores(model: ModelSession, output: RunOutput) -> list[float | None]:
    """Each row's out-of-distribution score (None for all when the model has no check)."""
    from medviewer.inference.ood import statistics_for

    statistics = statistics_for(model.entry) if output.features is not None else None
    if statistics is None:
        return [None] * output.probabilities.shape[0]
    return [float(v) for v in statistics.scores(output.features)]


def withheld_sentence(scope: ScopeCheck | None, read_out_of_scope: bool) -> str:
    """Why a read is not shown as a finding ('' when it may be)."""
    if scope is None or scope.in_scope is not False or read_out_of_scope:
        return ""
    return "Not read as a finding: " + " ".join(scope.reasons)


def make_prediction(model: ModelSession, path: Path, frame: int, uid: str,
                    probabilities: np.ndarray, inference_ms: float, *,
                    scope: ScopeCheck | None = None, read_out_of_scope: bool = False,
                    ood_score: float | None = None) -> Prediction:
    """One image's Prediction from its row of (calibrated) probabilities."""
    from medviewer.inference.site_points import effective_points

    card = model.card
    in_force = effective_points(card)
    thresholds = in_force.thresholds()
    values = [float(p) for p in np.asarray(probabilities).tolist()]
    decision = decide(card.classes, values, thresholds, card.no_finding_class,
                      withheld_sentence(scope, read_out_of_scope))
    flagged = set(decision.flagged)
    scores = []
    for name, probability in zip(card.classes, values):
        op = in_force.points.get(name)
        scores.append(ClassScore(name=name, probability=probability,
                                 threshold=op.threshold if op else None,
                                 flagged=name in flagged, method=op.method if op else ""))
    ood = None
    if ood_score is not None and card.ood is not None:
        ood = bool(ood_score > card.ood.threshold)
    return Prediction(path, frame, uid, card.name, card.version, card.sha256, model.provider,
                      scores, inference_ms, decision=decision,
                      in_scope=scope.in_scope if scope else None,
                      scope_reasons=list(scope.reasons) if scope else [],
                      read_out_of_scope=bool(read_out_of_scope and scope is not None
                                             and scope.in_scope is False),
                      ood_score=ood_score, ood=ood,
                      operating_points_source=in_force.source,
                      calibrated=card.calibration is not None)


def error_prediction(model: ModelSession, path: Path, message: str, frame: int = 0) -> Prediction:
    card = model.card
    return Prediction(path, frame, "", card.name, card.version, card.sha256, model.provider,
                      error=message)


def predict_instance(model: ModelSession, instance: Instance, frame: int = 0,
                     audit: bool = True, read_out_of_scope: bool = False) -> Prediction:
    """One image, synchronously (call from a worker thread in the GUI).

    ``audit=False`` makes a prediction nobody is shown (self-test, evaluation): it is not
    published, so the audit log does not record it.
    """
    prepared = prepare_instance(instance, model.card, frame)
    output = model.run(prepared.tensor[np.newaxis])
    prediction = make_prediction(model, instance.path, frame, input_uid(instance),
                                 output.probabilities[0], output.seconds * 1000.0,
                                 scope=check_scope(instance, model.card),
                                 read_out_of_scope=read_out_of_scope,
                                 ood_score=ood_scores(model, output)[0])
    if audit:
        publish([prediction])
    return prediction


# ---------------------------------------------------------------- inputs


def expand_inputs(paths: Iterable[str | os.PathLike], cancel: CancelFlag | None = None
                  ) -> Generator[Progress, None, tuple[list[Path], list[tuple[Path, str]]]]:
    """Files to read from a mix of files and folders, and the inputs that cannot be read.

    Folders (and DICOMDIRs) go through ``medviewer.dicom.catalog.index_path``, whose progress
    events are passed on; files it could not index come back with their sentence.
    """
    from medviewer.dicom.catalog import index_path

    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw)
        if cancel is not None:
            cancel.raise_if_cancelled()
        if not path.exists():
            problems.append((path, f"Cannot open {path}: the file does not exist."))
        elif path.is_dir() or path.name.upper() == "DICOMDIR":
            catalog = yield from index_path(path, cancel=cancel)
            # Records without rows/columns are not images (reports, presentation states).
            files.extend(rec.path for rec in catalog.instances() if rec.rows and rec.columns)
            problems.extend((err.path, err.reason) for err in catalog.errors)
        else:
            files.append(path)
    return files, problems


def _load(path: Path, model: ModelSession) -> tuple[str, PreparedInput, ScopeCheck] | str:
    """Decode, check and preprocess one file (on a pool thread); an error is its sentence."""
    try:
        instance = open_instance(path)
        return (input_uid(instance), prepare_instance(instance, model.card, 0),
                check_scope(instance, model.card))
    except UserError as exc:
        return str(exc)
    except MemoryError:
        return f"Cannot prepare {path} for the model: it needs more memory than is available."
    except Exception as exc:  # noqa: BLE001 - one odd file must not stop a batch job
        # The type only: messages and tracebacks can carry file names.
        log.debug("Unexpected %s while preparing an input", type(exc).__name__)
        return f"Cannot prepare {path} for the model: {exc or type(exc).__name__}."


# ---------------------------------------------------------------- the job


def predict_job(paths: Sequence[str | os.PathLike], model: ModelEntry | ModelSession, *,
                batch_size: int = DEFAULT_BATCH_SIZE, workers: int = DEFAULT_WORKERS,
                device: str = "auto", cancel: CancelFlag | None = None, audit: bool = True,
                read_out_of_scope: bool = False,
                ) -> Generator[Progress | PredictionReady, None, list[Prediction]]:
    """Predict every image in ``paths`` (files and folders); frame 0 of multi-frame images.

    Decoding and preprocessing run on ``workers`` threads, up to two batches ahead of the
    batch being inferred. The model session is created here (on the job's thread) when a
    ModelEntry is given. Images outside the model's intended use flag nothing unless
    ``read_out_of_scope``; ``audit=False`` does not publish the predictions (evaluation).
    """
    batch_size = max(1, int(batch_size))
    cancel = cancel or CancelFlag()
    yield Progress(0, None, "Finding images")
    files, missing = yield from expand_inputs(paths, cancel)
    total = len(files) + len(missing)
    if isinstance(model, ModelEntry):
        yield Progress(0, total, f"Loading model {model.key}")
        model = get_session(model, device)
    if model.fixed_batch:
        batch_size = model.fixed_batch
    results: list[Prediction | None] = [None] * total
    done = 0
    for offset, (path, reason) in enumerate(missing, start=len(files)):
        results[offset] = error_prediction(model, path, reason)
        done += 1
        yield PredictionReady(offset, results[offset])
    yield Progress(done, total, f"{done}/{total} images")

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="medviewer-prep")
    pending: deque[tuple[int, Future]] = deque()
    next_index = 0
    lookahead = batch_size * 3

    def top_up() -> None:
        nonlocal next_index
        while next_index < len(files) and len(pending) < lookahead:
            pending.append((next_index, pool.submit(_load, files[next_index], model)))
            next_index += 1

    try:
        while pending or next_index < len(files):
            cancel.raise_if_cancelled()
            top_up()
            batch: list[tuple[int, str, PreparedInput, ScopeCheck]] = []
            while pending and len(batch) < batch_size:
                index, future = pending.popleft()
                loaded = future.result()
                if isinstance(loaded, str):
                    results[index] = error_prediction(model, files[index], loaded)
                    done += 1
                    yield PredictionReady(index, results[index])
                else:
                    batch.append((index, *loaded))
                top_up()  # keep the pool busy while this batch runs
            if not batch:
                continue
            output = model.run(np.stack([item[2].tensor for item in batch]))
            per_image_ms = output.seconds * 1000.0 / len(batch)
            unusual = ood_scores(model, output)
            made = []
            for row, (index, uid, _, scope) in enumerate(batch):
                prediction = make_prediction(model, files[index], 0, uid,
                                             output.probabilities[row], per_image_ms,
                                             scope=scope, read_out_of_scope=read_out_of_scope,
                                             ood_score=unusual[row])
                results[index] = prediction
                made.append(prediction)
            if audit:
                # Before any is handed out: a consumer may stop the job in the middle of a batch.
                publish(made)
            for (index, *_), prediction in zip(batch, made):
                done += 1
                yield PredictionReady(index, prediction)
            yield Progress(done, total, f"{done}/{total} images")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    log.info("Predicted %d images with %s on %s (%d errors)", total, model.card.key,
             model.provider, sum(1 for r in results if r is not None and r.error))
    return [r for r in results if r is not None]


def predict_paths(paths: Sequence[str | os.PathLike], model: ModelEntry | ModelSession,
                  **options: Any) -> list[Prediction]:
    """Run :func:`predict_job` to the end on the calling thread (CLI, scripts, tests)."""
    from medviewer.jobs import run_to_end

    return run_to_end(predict_job(paths, model, **options))
