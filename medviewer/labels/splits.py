"""Patient-level splits of labelled images, without torch (the trainer and the dataset export
share them, and the Viewer edition has no torch).

``grouped_split`` keeps every group (a patient, or a lone image) in one split, stratified by
each group's majority label, seeded. ``patient_from_name`` finds a patient key in the file
names of public X-ray sets.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medviewer.errors import UserError

SPLIT_NAMES = ("train", "val", "test")

# Kermany/Guangzhou names: person1234_bacteria_5678.jpeg, IM-0001-0001.jpeg,
# NORMAL2-IM-0012-0001.jpeg. The last number of the IM- names counts images of one patient.
_PATIENT_PATTERNS = (
    re.compile(r"^(person\d+)_", re.IGNORECASE),
    re.compile(r"^((?:[a-z0-9]+-)?IM-\d+)-\d+", re.IGNORECASE),
    re.compile(r"^(patient[_-]?\d+)", re.IGNORECASE),
)


class SplitError(UserError):
    """Fractions or data that cannot make the requested splits."""


def patient_from_name(path: str | Path) -> str | None:
    """A patient key from a file name pattern, or None when the name carries none."""
    name = Path(path).name
    for pattern in _PATIENT_PATTERNS:
        match = pattern.match(name)
        if match:
            return match.group(1).upper()
    return None


@dataclass
class SplitIndices:
    train: list[int]
    val: list[int]
    test: list[int]
    fractions: dict[str, float] = field(default_factory=dict)

    def indices(self, name: str) -> list[int]:
        return getattr(self, name)


def grouped_split(labels: Sequence[int], groups: Sequence[str], val_fraction: float,
                  test_fraction: float, seed: int) -> SplitIndices:
    """Stratified, seeded split of items ``0..n-1`` that keeps each group in one split.

    Within each class (a group's majority label, ties to the lower label), groups are
    shuffled and each is given to the split furthest below its target number of items.
    """
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 \
            or val_fraction + test_fraction >= 1:
        raise SplitError(f"The split fractions (validation {val_fraction}, test "
                         f"{test_fraction}) must leave images for training.")
    members: dict[str, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        members[group].append(index)
    strata: dict[int, list[str]] = defaultdict(list)
    for key in sorted(members):
        counts = Counter(labels[i] for i in members[key])
        strata[min(counts, key=lambda lab: (-counts[lab], lab))].append(key)
    fractions = {"train": 1.0 - val_fraction - test_fraction, "val": val_fraction,
                 "test": test_fraction}
    rng = random.Random(seed)
    assigned: dict[str, list[int]] = {name: [] for name in SPLIT_NAMES}
    for label in sorted(strata):
        keys = strata[label]
        rng.shuffle(keys)
        total = sum(len(members[k]) for k in keys)
        taken = dict.fromkeys(SPLIT_NAMES, 0)
        for key in keys:
            name = max((n for n in SPLIT_NAMES if fractions[n] > 0),
                       key=lambda n: (fractions[n] * total - taken[n], fractions[n]))
            assigned[name].extend(members[key])
            taken[name] += len(members[key])
    for name in SPLIT_NAMES:
        if fractions[name] > 0 and not assigned[name]:
            raise SplitError(f"There are too few images ({len(labels)}) to make a "
                             f"{name} split.")
    return SplitIndices(sorted(assigned["train"]), sorted(assigned["val"]),
                        sorted(assigned["test"]), fractions)
