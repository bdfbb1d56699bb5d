"""The training package's user errors, apart from torch: checked before torch is imported."""

from __future__ import annotations

from medviewer.errors import UserError


class TrainingError(UserError):
    """Training or its data cannot go on; ``str()`` is one sentence for the user."""
