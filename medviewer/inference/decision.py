"""The one decision rule: which findings a model flags and what a reader is offered.

- A finding is positive iff its probability >= its operating point's threshold
  (:func:`at_or_above`, also used element-wise by the training metrics, so evaluation and
  reading cannot disagree at the boundary).
- A class without an operating point is never flagged.
- The reader is offered the flagged finding(s), most probable first; else the card's "no
  finding" class where the card names one; else nothing.
- Multi-label models are decided the same way: each finding against its own point.
- An image outside the model's intended use flags nothing and offers nothing, unless the
  reader chose to read it anyway (``withheld`` says why nothing was offered).

Qt-free and numpy-free: the AI panel, the label panel, the batch table, the audit log,
``predict`` and the evaluation all call :func:`decide`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def at_or_above(probability: Any, threshold: Any) -> Any:
    """The comparison every consumer uses: ``probability >= threshold`` (works on arrays)."""
    return probability >= threshold


@dataclass(frozen=True)
class Decision:
    """What the model's answer is for one image."""

    flagged: tuple[str, ...]  # findings at or above their point, most probable first
    offered: tuple[str, ...]  # what a reader is offered: the flagged findings, else the
    #                           "no finding" class, else nothing
    explain_class: str | None  # the class to explain by default: the most probable flagged
    #                            finding, else None (no map is shown silently)
    withheld: str = ""  # why nothing is offered although the model ran ('' when not withheld)

    @property
    def positive(self) -> bool:
        return bool(self.flagged)

    @property
    def suggestion(self) -> str | None:
        """The first offered class (the one Enter accepts in the label panel), or None."""
        return self.offered[0] if self.offered else None

    def to_dict(self) -> dict[str, Any]:
        return {"offered": list(self.offered), "flagged": list(self.flagged),
                "explain_class": self.explain_class, "withheld": self.withheld or None}


def decide(classes: Sequence[str], probabilities: Sequence[float],
           thresholds: Mapping[str, float | None], no_finding_class: str | None = None,
           withheld: str = "") -> Decision:
    """Apply the rule to one image's probabilities (same order as ``classes``).

    ``thresholds`` maps a class to its operating point (a missing or None entry: never
    flagged). ``withheld`` (a sentence) means the image is not to be read as a finding.
    """
    if len(classes) != len(probabilities):
        raise ValueError(f"{len(classes)} classes but {len(probabilities)} probabilities")
    if withheld:
        return Decision((), (), None, withheld)
    flagged = [(float(p), name) for name, p in zip(classes, probabilities)
               if thresholds.get(name) is not None and at_or_above(float(p), thresholds[name])]
    # Most probable first; equal probabilities keep the card's class order.
    order = sorted(range(len(flagged)), key=lambda i: (-flagged[i][0], i))
    names = tuple(flagged[i][1] for i in order)
    if names:
        return Decision(names, names, names[0])
    offered = (no_finding_class,) if no_finding_class and no_finding_class in classes else ()
    return Decision((), offered, None)
