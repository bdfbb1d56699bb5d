"""Operating points a site adopted from its own local validation, and where such records live.

A hospital may check a model on its own labelled images (``medviewer evaluate``,
``medviewer.app.validation``) and adopt its own threshold for a finding. That never
rewrites the model card or its hash: the records live in the user's data folder, under the
model's name, version and SHA-256 prefix (the built-in models' folder may be read-only).
Predictions then use the adopted threshold and say so (``operating_points_source``).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medviewer import paths
from medviewer.inference.model_card import ModelCard, ModelError, OperatingPoint

SITE_POINTS_FILE = "site_operating_points.json"


def validation_folder(card: ModelCard) -> Path:
    """Where this model's local validation records and adopted points are kept."""
    import re

    slug = re.sub(r"[^A-Za-z0-9._-]", "_", f"{card.name}-{card.version}-{card.sha256[:12]}")
    return paths.user_data_dir() / "model-validations" / slug


@dataclass(frozen=True)
class EffectivePoints:
    """The operating points in force for a model, and where they come from."""

    points: dict[str, OperatingPoint]
    source: str  # "card" or "site (local validation ID)"

    def thresholds(self) -> dict[str, float]:
        return {name: point.threshold for name, point in self.points.items()}


_cache: dict[str, tuple[tuple[int, int] | None, dict[str, Any]]] = {}
_lock = threading.Lock()


def read_site_points(card: ModelCard) -> dict[str, Any]:
    """The adopted points file as stored ({} when the site adopted none); cached by mtime."""
    path = validation_folder(card) / SITE_POINTS_FILE
    try:
        stat = path.stat()
        stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = None
    with _lock:
        cached = _cache.get(str(path))
    if cached is not None and cached[0] == stamp:
        return cached[1]
    data: dict[str, Any] = {}
    if stamp is not None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"The site's operating points for model '{card.name}' in {path} "
                             f"cannot be read ({exc}).") from None
    with _lock:
        _cache[str(path)] = (stamp, data)
    return data


def effective_points(card: ModelCard) -> EffectivePoints:
    """The card's operating points with any the site adopted for this exact model file."""
    site = read_site_points(card)
    adopted = site.get("points", {}) if site.get("sha256") == card.sha256 else {}
    points = dict(card.operating_points)
    for name, raw in adopted.items():
        if name in card.classes and name != card.no_finding_class:
            points[name] = OperatingPoint(float(raw["threshold"]), str(raw.get("method", "")),
                                          dict(raw.get("metrics", {})))
    if not adopted:
        return EffectivePoints(points, "card")
    validations = sorted({str(raw.get("validation", "")) for raw in adopted.values()} - {""})
    return EffectivePoints(points, "site (local validation " + ", ".join(validations) + ")"
                           if validations else "site")


def write_site_points(card: ModelCard, data: dict[str, Any]) -> Path:
    """Replace the adopted points file atomically (owner-only folder, like all user data)."""
    path = validation_folder(card) / SITE_POINTS_FILE
    paths.write_atomically(path, json.dumps(data, indent=2) + "\n")
    return path
