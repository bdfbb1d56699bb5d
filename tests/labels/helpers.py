"""Small helpers shared by the label tests."""

from __future__ import annotations

from medviewer.labels.store import ImageRef


def image(n: int, **hints) -> ImageRef:
    """A synthetic image key shaped like a SOP Instance UID."""
    return ImageRef(f"1.2.826.0.1.3680043.8.498.{n}", **hints)
