"""Is a path a training checkpoint torch may read? Checked before torch is imported or
reads it: torch blocks on a FIFO and answers a stray file with a page of pickle advice."""

from __future__ import annotations

import os
from pathlib import Path

from medviewer.training.errors import TrainingError

ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive


def check_checkpoint_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path when it is a regular, readable zip file; else one sentence."""
    from medviewer.files import open_regular, os_error_reason

    try:
        with open_regular(path, "rb") as handle:
            head = handle.read(len(ZIP_MAGIC))
    except FileNotFoundError:
        raise TrainingError(f"The checkpoint {path} does not exist.") from None
    except OSError as exc:
        raise TrainingError(f"Cannot open the checkpoint {path}: {os_error_reason(exc)}.") from None
    if head != ZIP_MAGIC:
        raise TrainingError(f"The checkpoint {path} is not a MedViewer training checkpoint.")
    return Path(path)
