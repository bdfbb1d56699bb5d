"""Small widget helpers more than one GUI module uses."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel


def bold_label(text: str) -> QLabel:
    """A label in the bold version of its normal font (a heading or a headline)."""
    label = QLabel(text)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    return label

