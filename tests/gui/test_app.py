"""Start-up: `medviewer [PATH]` in a fresh process, and what it must not import early."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import pydicom_file

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def run_medviewer(args: list[str], home: Path, mode: str = "image") -> dict[str, str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MEDVIEWER_HOME=str(home),
               MEDVIEWER_EXIT_AFTER_SHOW=mode)
    done = subprocess.run([sys.executable, "-m", "medviewer", *args], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = [l for l in done.stdout.splitlines() if l.startswith("MEDVIEWER_STARTUP ")]
    assert len(lines) == 1, done.stdout
    return dict(item.split("=", 1) for item in lines[0].split()[1:])


@pytest.mark.slow
def test_medviewer_without_path_shows_the_sample_study_without_torch(tmp_path):
    report = run_medviewer([], tmp_path)
    assert 0 < float(report["shown_s"]) < float(report["image_s"]) < 60
    assert report["torch"] == "0" and report["onnxruntime"] == "0"


@pytest.mark.slow
def test_medviewer_with_a_path_opens_it(tmp_path):
    report = run_medviewer([str(pydicom_file("CT_small.dcm"))], tmp_path)
    assert float(report["image_s"]) > 0
    recent = (tmp_path / "config" / "settings.json").read_text(encoding="utf-8")
    assert "CT_small.dcm" in recent


def test_the_window_does_not_wait_for_numpy_pydicom_pyqtgraph_or_torch():
    code = ("import sys; import medviewer.cli, medviewer.gui.app, medviewer.gui.main_window; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'numpy', 'pydicom', 'pyqtgraph', 'torch', 'onnxruntime', 'torchvision'}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=60,
                          env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_shown_window_has_not_loaded_numpy_pydicom_pyqtgraph_or_torch():
    """With every panel installed, the first paint still needs none of the heavy libraries,
    nor the label store's modules (they load on the store's thread)."""
    code = ("import sys\n"
            "from medviewer.gui.app import create_application\n"
            "from medviewer.gui.main_window import MainWindow\n"
            "app = create_application(); window = MainWindow(); window.show()\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'numpy', 'pydicom', 'pyqtgraph', 'torch', 'onnxruntime', 'torchvision'} | "
            "{m for m in sys.modules if m == 'medviewer.labels.store'}))\n"
            "window.close()\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=60,
                          env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
