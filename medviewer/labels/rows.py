"""How values sit in the store's rows: compact JSON text, a region's or a measurement's
columns as a state dict and back into a :class:`~medviewer.labels.values.Region` /
:class:`~medviewer.labels.values.Measurement`, a stored class list."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from medviewer.labels.values import (
    Ellipse,
    Geometry,
    Measurement,
    Polygon,
    Rectangle,
    Region,
)


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


MEASUREMENT_COLUMNS = ("id, image_key, reader, kind, frame, points, pixel_spacing, "
                       "spacing_source, label, text, computed, created_at, updated_at, "
                       "action_id")


def measurement_state_from_row(row: tuple) -> dict:
    """A ``SELECT MEASUREMENT_COLUMNS`` row as a state dict; the JSON columns decoded and
    ``computed`` called ``values`` as the API calls it."""
    (id_, image_key, reader, kind, frame, points, spacing, source, label, text, computed,
     created_at, updated_at, action_id) = row
    return {"id": id_, "image_key": image_key, "reader": reader, "kind": kind,
            "frame": frame, "points": json.loads(points),
            "pixel_spacing": json.loads(spacing) if spacing is not None else None,
            "spacing_source": source, "label": label, "text": text,
            "values": json.loads(computed), "created_at": created_at,
            "updated_at": updated_at, "action_id": action_id}


def measurement_row_values(state: dict) -> tuple:
    """The columns after ``id`` of MEASUREMENT_COLUMNS, from a state dict."""
    spacing = state["pixel_spacing"]
    return (state["image_key"], state["reader"], state["kind"], state["frame"],
            json_text(state["points"]), json_text(spacing) if spacing is not None else None,
            state["spacing_source"], state["label"], state["text"], json_text(state["values"]),
            state["created_at"], state["updated_at"], state["action_id"])


def measurement_from_state(state: dict) -> Measurement:
    spacing = state["pixel_spacing"]
    return Measurement(state["id"], state["image_key"], state["reader"], state["kind"],
                       tuple((p[0], p[1]) for p in state["points"]), state["frame"],
                       (spacing[0], spacing[1]) if spacing is not None else None,
                       state["spacing_source"], state["label"], state["text"],
                       dict(state["values"]), state["created_at"], state["updated_at"],
                       state["action_id"])


@functools.lru_cache(maxsize=4096)
def stored_classes(text: str) -> tuple[str, ...]:
    """Decode a stored class list; a label set has few distinct ones, so cache them."""
    return tuple(json.loads(text))


def tuple_or_none(value: Sequence[str] | None) -> tuple[str, ...] | None:
    return tuple(value) if value is not None else None
