"""The audit log hears every read through one subscription that the entry point makes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from medviewer import cli
from medviewer.dicom.reader import open_instance
from medviewer.inference import audit
from medviewer.inference.audit import AuditLog, audit_log_connected, connect_audit_log
from medviewer.inference.prediction import prediction_made
from medviewer.inference.predict import predict_instance
from medviewer.inference.runtime import get_session
from tests.conftest import PROJECT_ROOT


@pytest.fixture
def disconnected():
    """The process as a fresh interpreter starts it: nobody subscribed yet."""
    prediction_made.disconnect(audit.record_predictions)
    yield
    connect_audit_log()


def test_connecting_twice_keeps_one_subscription(install, kermany_images, disconnected):
    connect_audit_log()
    connect_audit_log()
    assert len(prediction_made) == 1
    session = get_session(install("mean"), device="cpu")
    predict_instance(session, open_instance(kermany_images[0]))
    assert len(AuditLog().rows()) == 1  # one row, not two


def test_the_gui_entry_connects_the_audit_before_the_window_exists(monkeypatch, install,
                                                                     kermany_images,
                                                                     disconnected):
    """`medviewer` without a command starts the GUI through cli.main: a read made anywhere
    in that process (here, where the window would run) reaches the audit log."""
    session = get_session(install("mean"), device="cpu")
    seen = {}

    def fake_gui(paths):
        seen["connected"] = audit_log_connected()
        predict_instance(session, open_instance(kermany_images[0]))
        return 0

    import medviewer.gui.app as gui_app

    monkeypatch.setattr(gui_app, "run_gui", fake_gui)
    assert not audit_log_connected()
    assert cli.main([]) == 0
    assert seen["connected"] and len(AuditLog().rows()) == 1


def test_a_predict_command_in_a_fresh_process_is_audited(tmp_path, kermany_images,
                                                         isolated_home):
    from tests.inference import onnx_models

    model = onnx_models.mean_model(tmp_path / "m" / "chest.onnx")
    onnx_models.write_card(model, name="chest")
    env = {"MEDVIEWER_HOME": str(isolated_home), "PYTHONPATH": str(PROJECT_ROOT),
           "PATH": "/usr/bin:/bin"}
    for argv in (["models", "import", str(model)],
                 ["predict", str(kermany_images[0]), "--model", "chest", "--device", "cpu", "--json"]):
        done = subprocess.run([sys.executable, "-m", "medviewer", *argv], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    rows = AuditLog().rows()
    assert len(rows) == 1 and rows[0]["model_name"] == "chest"
    assert rows[0]["decision"]["offered"] in (["finding"], [])


def test_only_the_audit_module_subscribes_and_only_publish_emits():
    """No module writes audit rows itself or emits behind publish()'s back."""
    sources = {p: p.read_text(encoding="utf-8")
               for p in (PROJECT_ROOT / "medviewer").rglob("*.py")}
    writers = [p.name for p, text in sources.items()
               if "record_predictions(" in text and p.name != "audit.py"]
    emitters = [p.name for p, text in sources.items()
                if "prediction_made.emit" in text and p.name != "prediction.py"]
    assert writers == [] and emitters == []
