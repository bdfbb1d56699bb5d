"""Which keys labelling holds, and which it lends back to the image views.

While a label set is chosen and the Labels dock is open, 1..9, Enter, N, P, U, R, Backspace,
Delete and the undo keys belong to the Labels actions. An image view's own action that
shares one releases it meanwhile (rotate right moves from R to Shift+R) and gets it back
when labelling stops; with a viewport grid, every view does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence

if TYPE_CHECKING:
    from medviewer.gui.image_view import ImageView

# Image view keys that labelling takes while it is active, and where they move meanwhile.
MOVED_VIEW_KEYS = {"rotate_right": "Shift+R"}


class LabellingKeys:
    """The labelling actions' keys (``keys_for``) and the views that lend theirs."""

    def __init__(self, views: Callable[[], Sequence[ImageView]]) -> None:
        self.keys_for: dict[QAction, list[str]] = {}
        self.class_actions: list[QAction] = []  # key i + 1 for class i, while it exists
        self._views = views
        self._taken: dict[QAction, list[QKeySequence]] = {}

    def set_views(self, views: Callable[[], Sequence[ImageView]]) -> None:
        self._views = views

    def update(self, active: bool, n_classes: int) -> None:
        """Give the keys to the labelling actions while ``active``, else release them."""
        claimed: set[str] = set()
        for action, keys in self.keys_for.items():
            usable = active and (action not in self.class_actions
                                 or self.class_actions.index(action) < n_classes)
            action.setShortcuts([QKeySequence(k) for k in keys] if usable else [])
            if usable:
                claimed.update(QKeySequence(k).toString() for k in keys)
        # Restore the view keys taken earlier, then take the ones labelling uses now.
        for action, original in self._taken.items():
            action.setShortcuts(original)
        self._taken.clear()
        if not claimed:
            return
        for view in self._views():
            for name, action in view.actions_by_name.items():
                keys = action.shortcuts()
                kept = [k for k in keys if k.toString() not in claimed]
                if len(kept) != len(keys):
                    self._taken[action] = keys
                    if name in MOVED_VIEW_KEYS:
                        kept.append(QKeySequence(MOVED_VIEW_KEYS[name]))
                    action.setShortcuts(kept)
