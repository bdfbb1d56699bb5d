"""Inter-reader agreement: Cohen's kappa for two readers, Fleiss' kappa for several, and
each reader against the AI, per class and overall.

Per class, agreement is one-vs-rest: did the reader give the image this class or not. Overall
it is the multi-category kappa of the decisions in a single-label set, and the kappa of the
pooled (image, class) yes/no decisions in a multi-label set. A kappa is ``None`` where it is
undefined (no shared images, or chance agreement of 1 because every decision was the same).

Two kinds of AI comparison: AI predictions stored under a reader named ``ai`` or
``ai:<model>``, and the reader's own decisions made with an AI suggestion in view (source
``ai_accepted``: the AI said the same; ``ai_overridden``: it said ``ai_classes``, or, in a
two-class single-label set, the other class).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations

from medviewer.labels.store import ImageLabel, LabelSet, LabelStore, is_ai_reader

AI_FROM_SOURCES = "ai (suggestions)"


def cohens_kappa(rater_a: Sequence[Hashable], rater_b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters' categories for the same items (in the same order)."""
    if len(rater_a) != len(rater_b):
        raise ValueError("both raters must rate the same items")
    n = len(rater_a)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(rater_a, rater_b)) / n
    count_a, count_b = Counter(rater_a), Counter(rater_b)
    expected = sum(count_a[k] * count_b[k] for k in count_a) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(table: Sequence[Sequence[int]]) -> float | None:
    """Fleiss' kappa from an items x categories table of how many raters chose each.

    Every item must have the same number of raters (at least two).
    """
    if not table:
        return None
    raters = sum(table[0])
    if raters < 2 or any(sum(row) != raters for row in table):
        raise ValueError("every item needs the same number of raters, at least two")
    items = len(table)
    categories = len(table[0])
    agreement = [(sum(c * c for c in row) - raters) / (raters * (raters - 1)) for row in table]
    mean_agreement = sum(agreement) / items
    proportions = [sum(row[j] for row in table) / (items * raters) for j in range(categories)]
    expected = sum(p * p for p in proportions)
    if expected >= 1.0:
        return None
    return (mean_agreement - expected) / (1.0 - expected)


@dataclass
class PairAgreement:
    reader_a: str
    reader_b: str
    images: int
    kappa: float | None
    observed: float | None
    per_class: dict[str, float | None] = field(default_factory=dict)


@dataclass
class GroupAgreement:
    readers: list[str]
    images: int
    kappa: float | None
    per_class: dict[str, float | None] = field(default_factory=dict)


@dataclass
class AgreementReport:
    label_set: str
    pairs: list[PairAgreement]
    fleiss: GroupAgreement | None
    reader_vs_ai: list[PairAgreement]
    ai_acceptance: dict[str, dict[str, float | int | None]]

    def as_dict(self) -> dict:
        return asdict(self)


def pair_agreement(a_name: str, b_name: str, a: dict[str, tuple[str, ...]],
                   b: dict[str, tuple[str, ...]], label_set: LabelSet) -> PairAgreement:
    """Agreement of two readers' decisions ({image key: classes}) on their shared images."""
    shared = sorted(set(a) & set(b))
    per_class = {c: cohens_kappa([c in a[k] for k in shared], [c in b[k] for k in shared])
                 for c in label_set.classes}
    if label_set.multi_label:
        left = [c in a[k] for k in shared for c in label_set.classes]
        right = [c in b[k] for k in shared for c in label_set.classes]
    else:
        left, right = [a[k] for k in shared], [b[k] for k in shared]
    observed = sum(x == y for x, y in zip(left, right)) / len(left) if left else None
    return PairAgreement(a_name, b_name, len(shared), cohens_kappa(left, right), observed,
                         per_class)


def group_agreement(readers: Sequence[str], decisions: dict[str, dict[str, tuple[str, ...]]],
                    label_set: LabelSet) -> GroupAgreement:
    """Fleiss' kappa over the images every one of ``readers`` labelled."""
    complete = sorted(k for k, by_reader in decisions.items()
                      if all(r in by_reader for r in readers))
    n = len(readers)
    per_class: dict[str, float | None] = {}
    for c in label_set.classes:
        table = []
        for key in complete:
            yes = sum(c in decisions[key][r] for r in readers)
            table.append([yes, n - yes])
        per_class[c] = fleiss_kappa(table) if table else None
    if label_set.multi_label:
        table = []
        for key in complete:
            for c in label_set.classes:
                yes = sum(c in decisions[key][r] for r in readers)
                table.append([yes, n - yes])
    else:
        table = [[sum(decisions[key][r] == (c,) for r in readers) for c in label_set.classes]
                 for key in complete]
    overall = fleiss_kappa(table) if table else None
    return GroupAgreement(list(readers), len(complete), overall, per_class)


def ai_view(label: ImageLabel, label_set: LabelSet) -> tuple[str, ...] | None:
    """What the AI suggested for a decision made with its suggestion in view, if known."""
    if label.source == "ai_accepted":
        return label.classes
    if label.source != "ai_overridden":
        return None
    if label.ai_classes:
        return label.ai_classes
    if not label_set.multi_label and len(label_set.classes) == 2:
        other = [c for c in label_set.classes if c not in label.classes]
        return tuple(other) if len(other) == 1 else None
    return None


def agreement_report(store: LabelStore, label_set: str) -> AgreementReport:
    current_set = store.label_set(label_set)
    labels = store.current_labels(label_set)
    by_reader: dict[str, dict[str, tuple[str, ...]]] = {}
    for label in labels:
        by_reader.setdefault(label.reader, {})[label.image_key] = label.classes
    humans = sorted(r for r in by_reader if not is_ai_reader(r))
    ais = sorted(r for r in by_reader if is_ai_reader(r))
    pairs = [pair_agreement(a, b, by_reader[a], by_reader[b], current_set)
             for a, b in combinations(humans, 2)]
    fleiss = None
    if len(humans) >= 3:
        decisions: dict[str, dict[str, tuple[str, ...]]] = {}
        for reader in humans:
            for key, classes in by_reader[reader].items():
                decisions.setdefault(key, {})[reader] = classes
        fleiss = group_agreement(humans, decisions, current_set)
    versus_ai = [pair_agreement(h, a, by_reader[h], by_reader[a], current_set)
                 for h in humans for a in ais]
    acceptance: dict[str, dict[str, float | int | None]] = {}
    suggested: dict[str, dict[str, tuple[str, ...]]] = {}
    own: dict[str, dict[str, tuple[str, ...]]] = {}
    for label in labels:
        if is_ai_reader(label.reader) or label.source not in ("ai_accepted", "ai_overridden"):
            continue
        counts = acceptance.setdefault(label.reader, {"accepted": 0, "overridden": 0})
        counts["accepted" if label.source == "ai_accepted" else "overridden"] += 1
        view = ai_view(label, current_set)
        if view is not None:
            suggested.setdefault(label.reader, {})[label.image_key] = view
            own.setdefault(label.reader, {})[label.image_key] = label.classes
    for reader, counts in acceptance.items():
        total = counts["accepted"] + counts["overridden"]
        counts["rate"] = counts["accepted"] / total if total else None
        if reader in suggested:
            versus_ai.append(pair_agreement(reader, AI_FROM_SOURCES, own[reader],
                                            suggested[reader], current_set))
    return AgreementReport(current_set.name, pairs, fleiss, versus_ai, acceptance)
