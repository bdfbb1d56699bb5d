"""CSV files a spreadsheet may open: cells that would run as formulas are neutralised when
written and restored when read, so a round trip gives back every value exactly.

A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula
to Excel, LibreOffice and Google Sheets (OWASP, "CSV injection"); labels, reader names,
notes, Patient IDs and paths come from people and from DICOM headers, so any of them may.
Such a cell is written with a leading apostrophe, which spreadsheets show as text and hide.
A cell that already begins with an apostrophe gets one more, so reading strips exactly one
apostrophe and gives back what was written. Plain numbers ("-1.5") stay numbers.

Every CSV the project writes goes through :func:`writer`, every CSV it reads through
:func:`restore` (per cell) or :func:`restored_rows`.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from typing import IO, Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_ESCAPE = "'"
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def neutralise(cell: str) -> str:
    """The text to write for ``cell`` so that no spreadsheet runs it as a formula."""
    if not cell:
        return cell
    if cell[0] == _ESCAPE or (cell[0] in FORMULA_STARTS and not _PLAIN_NUMBER.fullmatch(cell)):
        return _ESCAPE + cell
    return cell


def restore(cell: str) -> str:
    """The value a cell written by :func:`neutralise` stood for (others are unchanged)."""
    if len(cell) > 1 and cell[0] == _ESCAPE and (cell[1] == _ESCAPE
                                                  or cell[1] in FORMULA_STARTS):
        return cell[1:]
    return cell


class _NeutralisingWriter:
    """``csv.writer`` whose text cells pass through :func:`neutralise`."""

    def __init__(self, handle: IO[str], **options: Any) -> None:
        self._writer = csv.writer(handle, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([neutralise(cell) if isinstance(cell, str) else cell
                                      for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(handle: IO[str], **options: Any) -> _NeutralisingWriter:
    """A CSV writer for a file people may open in a spreadsheet."""
    return _NeutralisingWriter(handle, **options)


def restored_rows(handle: IO[str], **options: Any) -> Iterator[list[str]]:
    """``csv.reader`` rows with every cell restored."""
    for row in csv.reader(handle, **options):
        yield [restore(cell) for cell in row]
