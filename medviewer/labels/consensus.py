"""Labels for training: one set of classes per image, decided by a consensus rule.

Rules (``rule`` argument, also accepted as text):

* ``"majority"``: a class counts when more than half of the human readers who labelled the
  image chose it (AI readers ``ai``/``ai:*`` never vote). Images where no class reaches a
  majority (e.g. a 1-1 tie) are left out and counted in ``excluded["no majority"]``.
* ``"reader:NAME"``: exactly that reader's decisions (``reader:ai`` uses stored AI labels).

``min_readers`` leaves out images labelled by fewer human readers (``excluded["too few
readers"]``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from medviewer.labels.errors import InvalidLabelError
from medviewer.labels.store import LabelStore, is_ai_reader


@dataclass(frozen=True)
class TrainingItem:
    image_key: str
    path: str | None
    labels: tuple[str, ...]
    sop_instance_uid: str | None
    content_hash: str | None
    patient_id: str | None
    readers: tuple[str, ...]


@dataclass
class TrainingLabels:
    label_set: str
    classes: tuple[str, ...]
    multi_label: bool
    rule: str
    items: list[TrainingItem] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)


def training_labels(store: LabelStore, label_set: str, rule: str = "majority", *,
                    min_readers: int = 1) -> TrainingLabels:
    current_set = store.label_set(label_set)
    if rule != "majority" and not rule.startswith("reader:"):
        raise InvalidLabelError(f"The consensus rule '{rule}' is not 'majority' or "
                                f"'reader:NAME'.")
    only_reader = rule.split(":", 1)[1] if rule.startswith("reader:") else None
    if only_reader is not None and not only_reader:
        raise InvalidLabelError("The consensus rule 'reader:' needs a reader name.")
    votes: dict[str, dict[str, tuple[str, ...]]] = {}
    for key, by_reader in store.decisions(label_set).items():
        kept = {r: c for r, c in by_reader.items()
                if (r == only_reader if only_reader is not None else not is_ai_reader(r))}
        if kept:
            votes[key] = kept
    images = store.images(votes)
    result = TrainingLabels(current_set.name, current_set.classes, current_set.multi_label,
                            rule)
    excluded: Counter[str] = Counter()
    for key in sorted(votes):
        by_reader = votes[key]
        if only_reader is None and len(by_reader) < min_readers:
            excluded["too few readers"] += 1
            continue
        counts = Counter(c for classes in by_reader.values() for c in classes)
        chosen = tuple(c for c in current_set.classes if counts[c] * 2 > len(by_reader))
        if not chosen:
            excluded["no majority"] += 1
            continue
        image = images.get(key)
        result.items.append(TrainingItem(
            key, image.path if image else None, chosen,
            image.sop_instance_uid if image else None,
            image.content_hash if image else None,
            image.patient_id if image else None, tuple(sorted(by_reader))))
    result.excluded = dict(excluded)
    return result
