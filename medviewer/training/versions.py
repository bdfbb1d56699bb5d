"""The training engine's versions, for About and the self-test (torch loads only if asked)."""

from __future__ import annotations


def torch_version() -> str:
    """torch's version; imports torch (a PyInstaller bundle may lack its package metadata)."""
    import torch

    return str(torch.__version__)
