"""`medviewer --self-test`: passes with a real (tiny) model, fails with a clear reason otherwise."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from medviewer import paths, selftest
from medviewer.inference import runtime
from tests.inference import onnx_models

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def write_tiny_model(folder: Path, name: str = "tiny-cam") -> Path:
    """A two-class CAM model on 64x64 grey input with its card, as a built-in models folder."""
    onnx_path = onnx_models.cam_model(folder / f"{name}.onnx")
    onnx_models.write_card(onnx_path, input={"channels": 1, "height": 64, "width": 64},
                           outputs={"cam": "cam"})
    return onnx_path


@pytest.fixture(autouse=True)
def fresh_sessions(monkeypatch):
    # The self-test may repoint the built-in models folder; every test gets the original back.
    monkeypatch.setattr(paths, "BUILTIN_MODELS_DIR", paths.BUILTIN_MODELS_DIR)
    runtime.clear_session_cache()
    yield
    runtime.clear_session_cache()


def run(models_dir: Path) -> tuple[int, str, str]:
    """In this process, without the (slow) torch import: the child-process test covers it."""
    out, err = io.StringIO(), io.StringIO()
    from medviewer.gui.selftest_window import GUI_CHECKS

    code = selftest.run_self_test(GUI_CHECKS, models_dir, out=out, err=err,
                                  with_training=False)
    return code, out.getvalue(), err.getvalue()


def test_passes_with_a_model_and_prints_one_summary_line(tmp_path, isolated_home, qapp):
    write_tiny_model(tmp_path / "models")
    code, out, err = run(tmp_path / "models")
    assert code == 0, err
    assert err == ""
    assert out.count("\n") == 1
    assert out.startswith("MedViewer self-test passed: development edition")
    assert "model tiny-cam@1.0 on CPUExecutionProvider" in out
    for step in ("study", "model load", "predict", "saliency", "window", "labels", "total"):
        assert f"{step} " in out
    # A GPU build without a usable GPU says why it fell back to the CPU.
    if "CUDAExecutionProvider" in runtime.available_providers():
        assert "CPUExecutionProvider (Model 'tiny-cam' runs on the CPU: " in out
    # Its own temporary home: nothing was written to the (test's) user folders.
    assert os.environ["MEDVIEWER_HOME"] == str(isolated_home)
    assert list(isolated_home.iterdir()) == []


def test_without_a_model_fails_naming_the_folder(tmp_path, qapp):
    empty = tmp_path / "no-models"
    empty.mkdir()
    code, out, err = run(empty)
    assert code == 1
    assert out == ""
    assert err == ("MedViewer self-test failed at model load: no built-in model is installed "
                   f"in {empty}\n")


def test_a_model_whose_card_is_broken_is_named(tmp_path, qapp):
    onnx_path = write_tiny_model(tmp_path / "models")
    onnx_path.with_suffix(".json").write_text("{not json", encoding="utf-8")
    code, _out, err = run(tmp_path / "models")
    assert code == 1
    assert err.startswith("MedViewer self-test failed at model load: no built-in model is "
                          "installed")
    assert "is not valid JSON" in err and err.count("\n") == 1


def test_a_changed_model_file_is_refused(tmp_path, qapp):
    onnx_path = write_tiny_model(tmp_path / "models")
    with open(onnx_path, "ab") as handle:
        handle.write(b"\0")
    code, _out, err = run(tmp_path / "models")
    assert code == 1
    assert err.startswith("MedViewer self-test failed at model load: The model file tiny-cam.onnx "
                          "is refused: its SHA-256 no longer matches its card")


def test_a_missing_sample_study_fails_at_the_first_step(tmp_path, monkeypatch, qapp):
    write_tiny_model(tmp_path / "models")
    monkeypatch.setattr(paths, "SAMPLE_STUDY_DIR", tmp_path / "gone")
    code, _out, err = run(tmp_path / "models")
    assert code == 1
    assert err == (f"MedViewer self-test failed at study: the bundled sample study "
                   f"{tmp_path / 'gone'} is missing\n")


def test_a_missing_qt_platform_plugin_is_named_before_qt_aborts(monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "nosuchplatform")
    from medviewer.gui.selftest_window import check_qt_platform_plugins

    with pytest.raises(selftest.SelfTestFailure, match="Qt platform plugin.*nosuchplatform"):
        check_qt_platform_plugins()


def test_installation_info_names_versions_and_the_provider():
    info = selftest.installation_info()
    assert info["MedViewer"] == metadata.version("medviewer")
    assert info["Edition"] == "development"
    assert info["onnxruntime"].startswith(metadata.version("onnxruntime-gpu"))
    assert info["torch"] == metadata.version("torch")
    assert info["Qt"].startswith("6.")
    report = runtime.provider_report()
    assert info["Execution provider"].startswith(report.active)
    assert (report.notice in info["Execution provider"]) if report.notice else True


def test_cli_flag_uses_the_models_dir_environment_variable(tmp_path):
    """The real entry point in a child process: MEDVIEWER_MODELS_DIR picks the models folder."""
    write_tiny_model(tmp_path / "models")
    env = {**os.environ, "MEDVIEWER_MODELS_DIR": str(tmp_path / "models")}
    env.pop("QT_QPA_PLATFORM", None)  # the self-test sets offscreen itself
    result = subprocess.run([sys.executable, "-m", "medviewer", "--self-test"], env=env,
                            capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("MedViewer self-test passed: ")
    assert "model tiny-cam@1.0" in result.stdout
    assert "training " in result.stdout  # torch is installed here, as in the Studio edition
    assert result.stderr == ""  # Qt's console notes go to the debug log


def test_about_box_shows_versions_and_the_provider(qtbot):
    from medviewer.gui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    try:
        box = window.show_about()
        text = box.text()
        box.close()
    finally:
        window.close()
    report = runtime.provider_report()
    assert f"Execution provider: {report.active}" in text
    assert f"onnxruntime: {metadata.version('onnxruntime-gpu')} (onnxruntime-gpu)" in text
    assert f"torch: {metadata.version('torch')}" in text
    assert "Edition: development" in text and "Qt: 6." in text


def test_training_check_refuses_automatic_garbage_collection(qapp):
    """Studio's check: were automatic collection on, a pass could run on the training thread."""
    import gc

    from medviewer.gui.app import GuiThreadGarbageCollector
    from medviewer.gui.selftest_window import check_training_tools

    qapp.garbage_collector = GuiThreadGarbageCollector()  # as create_application sets it up
    try:
        assert check_training_tools().startswith(metadata.version("torch"))
        gc.enable()  # what a library switching collection back on would do
        with pytest.raises(selftest.SelfTestFailure, match="not confined to the GUI thread"):
            check_training_tools()
    finally:
        qapp.garbage_collector.stop()
        del qapp.garbage_collector
