"""Counts per class, reader and source, plus the agreement figures, for one label set."""

from __future__ import annotations

from collections import Counter

from medviewer.labels.agreement import agreement_report
from medviewer.labels.store import LabelStore


def label_stats(store: LabelStore, label_set: str) -> dict:
    current_set = store.label_set(label_set)
    labels = store.current_labels(label_set)
    regions = store.regions(label_set)
    per_class = Counter({c: 0 for c in current_set.classes})
    per_reader: dict[str, dict] = {}
    per_source: Counter[str] = Counter()
    for label in labels:
        per_source[label.source] += 1
        entry = per_reader.setdefault(label.reader, {
            "images": 0, "classes": {c: 0 for c in current_set.classes}, "regions": 0})
        entry["images"] += 1
        for c in label.classes:
            per_class[c] += 1
            entry["classes"][c] += 1
    regions_per_class = Counter({c: 0 for c in current_set.classes})
    for region in regions:
        regions_per_class[region.class_name] += 1
        per_reader.setdefault(region.reader, {
            "images": 0, "classes": {c: 0 for c in current_set.classes}, "regions": 0}
        )["regions"] += 1
    return {
        "label_set": current_set.name,
        "classes": list(current_set.classes),
        "multi_label": current_set.multi_label,
        "images": len({label.image_key for label in labels}),
        "decisions": len(labels),
        "regions": len(regions),
        "per_class": dict(per_class),
        "regions_per_class": dict(regions_per_class),
        "per_reader": dict(sorted(per_reader.items())),
        "per_source": dict(sorted(per_source.items())),
        "agreement": agreement_report(store, label_set).as_dict(),
    }
