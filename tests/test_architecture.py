"""The architecture is checked, not hoped for: import-linter's contracts (pyproject.toml,
docs/architecture.md's layers) and the size of modules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 800
# A longer module says why at its top, in a line starting with this.
LONG_MODULE_REASON = "Why this module is long"


def test_import_contracts_are_kept():
    """`lint-imports` with the project's configuration: layers, Qt only in gui/, torch only
    in training/, no cycle between the modules of any package."""
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache", "--config", "pyproject.toml"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT)))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


@pytest.mark.parametrize("module", sorted(
    str(p.relative_to(PROJECT_ROOT)) for p in (PROJECT_ROOT / "medviewer").rglob("*.py")))
def test_long_modules_say_why(module):
    text = (PROJECT_ROOT / module).read_text(encoding="utf-8")
    lines = text.count("\n")
    if lines <= MAX_MODULE_LINES:
        return
    head = "\n".join(text.splitlines()[:40])
    assert LONG_MODULE_REASON in head, (
        f"{module} has {lines} lines: split it, or say at its top '{LONG_MODULE_REASON} ...'")
