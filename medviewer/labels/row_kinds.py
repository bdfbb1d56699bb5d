"""The kinds of row the label store keeps and its history can undo: the one list a new
kind is added to (with its module's row kind object, see
:class:`~medviewer.labels.unit_of_work.RowKind`). The store and the recovery take it from
here."""

from __future__ import annotations

from medviewer.labels.decisions import LABEL_ROWS
from medviewer.labels.measurements import MEASUREMENT_ROWS
from medviewer.labels.regions import REGION_ROWS
from medviewer.labels.unit_of_work import RowKinds


def row_kinds() -> RowKinds:
    return RowKinds(LABEL_ROWS, REGION_ROWS, MEASUREMENT_ROWS)
