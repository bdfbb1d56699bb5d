"""What one AI read produced, and the "prediction made" event every read is announced on.

A leaf of the inference package: the batch job (``predict``), the saliency reads
(``saliency``), the GUI's reading jobs and the audit log all import it; it imports none of
them. Whoever makes a prediction a person or a file will see calls :func:`publish`; the
audit log is one subscriber of :data:`prediction_made` (``audit.connect_audit_log``, called
once by ``medviewer.cli.main`` before any command or the GUI runs), so no read reaches a
reader without being recorded, and nothing that reads has to know about the audit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medviewer.events import Emitter
from medviewer.inference.decision import Decision

# Emitted with a list[Prediction] (one batch), on the thread that made them.
prediction_made: Emitter = Emitter("prediction_made")


def publish(predictions: list[Prediction]) -> None:
    """Announce predictions that are about to be shown or written out (the audit records
    them); call it before handing them out, so a consumer stopping early loses none."""
    if predictions:
        prediction_made.emit(list(predictions))


@dataclass(frozen=True)
class ClassScore:
    name: str
    probability: float  # calibrated where the card has a calibration
    threshold: float | None  # the operating point in force; None where the class has none
    flagged: bool  # decision.at_or_above(probability, threshold); never without a threshold
    method: str = ""  # how the threshold was chosen


@dataclass
class Prediction:
    """One image's result, or the sentence saying why it has none (``error``)."""

    path: Path  # for the caller's display only: never logged or audited
    frame: int
    input_uid: str  # SOP Instance UID, or 'sha256:<hex>' of a plain image file
    model_name: str
    model_version: str
    model_sha256: str
    provider: str
    scores: list[ClassScore] = field(default_factory=list)
    inference_ms: float = 0.0
    error: str | None = None
    decision: Decision | None = None  # None for an error
    in_scope: bool | None = None  # None: the card states no intended scope
    scope_reasons: list[str] = field(default_factory=list)  # sentences, when out of scope
    read_out_of_scope: bool = False  # the reader chose to read it anyway (audited)
    ood_score: float | None = None  # None: the model has no OOD check
    ood: bool | None = None  # True: unusual image for this model
    operating_points_source: str = "card"  # or "site (local validation ID)"
    calibrated: bool = False  # probabilities went through the card's calibration

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def top(self) -> ClassScore | None:
        """The most probable class. Kept for the batch table until it shows the decision;
        not a decision: use ``decision``."""
        return max(self.scores, key=lambda s: s.probability) if self.scores else None

    @property
    def flagged(self) -> list[str]:
        """The flagged findings, most probable first (the decision's)."""
        return list(self.decision.flagged) if self.decision else []

    @property
    def offered(self) -> list[str]:
        """What a reader is offered: flagged findings, else the no-finding class, else []."""
        return list(self.decision.offered) if self.decision else []

    def score(self, class_name: str) -> ClassScore:
        for score in self.scores:
            if score.name == class_name:
                return score
        raise KeyError(class_name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "frame": self.frame, "input_uid": self.input_uid,
            "model": {"name": self.model_name, "version": self.model_version,
                      "sha256": self.model_sha256},
            "provider": self.provider, "inference_ms": round(self.inference_ms, 3),
            "decision": self.offered if self.ok else None,
            "flagged": self.flagged,
            "explain_class": self.decision.explain_class if self.decision else None,
            "withheld": (self.decision.withheld or None) if self.decision else None,
            "classes": {s.name: {"probability": s.probability, "threshold": s.threshold,
                                 "flagged": s.flagged, "method": s.method}
                        for s in self.scores},
            "calibrated": self.calibrated,
            "operating_points_source": self.operating_points_source,
            "in_scope": self.in_scope, "scope_reasons": list(self.scope_reasons),
            "read_out_of_scope": self.read_out_of_scope,
            "ood_score": self.ood_score, "ood": self.ood,
            "error": self.error,
        }
