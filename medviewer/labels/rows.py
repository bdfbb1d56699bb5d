"""How values sit in the store's rows: compact JSON text, a region's columns as a state
dict and back into a :class:`~medviewer.labels.values.Region`, a stored class list."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from medviewer.labels.values import Ellipse, Geometry, Polygon, Rectangle, Region


def json_text(value: Any) -> str:
    """Compact JSON as the store keeps it in its text columns (non-ASCII kept as is)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


REGION_COLUMNS = ("id, label_set_id, image_key, reader, class_name, shape, x, y, width, "
                  "height, points, frame, source, note, created_at, updated_at, action_id")


def region_state_from_row(row: tuple) -> dict:
    """A ``SELECT REGION_COLUMNS`` row as a state dict (the form the history records)."""
    keys = [k.strip() for k in REGION_COLUMNS.split(",")]
    state = dict(zip(keys, row))
    state["points"] = json.loads(state["points"]) if state["points"] is not None else None
    return state


def geometry_state(geometry: Geometry) -> dict:
    points = [list(p) for p in geometry.points] if geometry.shape == "polygon" else None
    return {"shape": geometry.shape, "x": float(geometry.x), "y": float(geometry.y),
            "width": float(geometry.width), "height": float(geometry.height),
            "points": points}


def region_from_state(set_name: str, state: dict) -> Region:
    if state["shape"] == "polygon":
        geometry: Geometry = Polygon(tuple(tuple(p) for p in state["points"]))
    elif state["shape"] == "ellipse":
        geometry = Ellipse(state["x"], state["y"], state["width"], state["height"])
    else:
        geometry = Rectangle(state["x"], state["y"], state["width"], state["height"])
    return Region(state["id"], set_name, state["image_key"], state["reader"],
                  state["class_name"], geometry, state["frame"], state["source"], state["note"],
                  state["created_at"], state["updated_at"], state["action_id"])


@functools.lru_cache(maxsize=4096)
def stored_classes(text: str) -> tuple[str, ...]:
    """Decode a stored class list; a label set has few distinct ones, so cache them."""
    return tuple(json.loads(text))


def tuple_or_none(value: Sequence[str] | None) -> tuple[str, ...] | None:
    return tuple(value) if value is not None else None
