"""Notes: the free text a reader keeps on their decision about an image.

A note is part of the decision's row (:data:`~medviewer.labels.decisions.LABEL_ROWS`), so
the history records a note change as a change of that row and undo/redo restore it with
the decision; :class:`Notes` holds the one action that changes only the note.
"""

from __future__ import annotations

from medviewer.labels.decisions import LABEL_ROWS, label_from_state
from medviewer.labels.errors import InvalidLabelError
from medviewer.labels.unit_of_work import Actions
from medviewer.labels.values import ImageLabel, now_iso


class Notes:
    def __init__(self, actions: Actions) -> None:
        self._actions = actions

    def set_note(self, label_set: str, image_key: str, note: str | None, *,
                 reader: str) -> ImageLabel:
        """Change the note on the reader's existing decision (empty text removes it)."""
        with self._actions.begin("set_note", label_set) as work:
            key = LABEL_ROWS.key(work.label_set.id, image_key, reader)
            old = work.read(LABEL_ROWS, key)
            if old is None:
                raise InvalidLabelError(f"Reader '{reader}' has no label on this image in "
                                        f"label set '{label_set}' to add a note to.")
            new = dict(old, note=note or None, labelled_at=now_iso(),
                       action_id=work.action_id)
            work.put(LABEL_ROWS, key, new, old=old)
        return label_from_state(work.label_set.name, image_key, reader, new, None)
