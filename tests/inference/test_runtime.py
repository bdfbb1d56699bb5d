"""onnxruntime sessions: provider choice and CPU fallback, caching, warm-up, activations."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from medviewer.inference import runtime
from medviewer.inference.registry import ModelError
from medviewer.inference.runtime import CPU, CUDA, get_session


def _driver_present() -> bool:
    try:
        ctypes.CDLL("nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1")
    except OSError:
        return False
    return True


def test_cpu_session_runs_and_reports_its_provider(install):
    session = get_session(install("mean"), device="cpu")
    assert session.provider == CPU == session.session.get_providers()[0]
    assert session.notice == ""
    batch = np.stack([np.full((1, 16, 16), v, np.float32) for v in (0.2, 0.7)])
    output = session.run(batch)
    np.testing.assert_allclose(output.probabilities, [[0.8, 0.2], [0.3, 0.7]], atol=1e-6)
    assert output.cam is None and output.seconds > 0


def test_asking_for_cuda_without_a_working_gpu_falls_back_to_cpu_with_a_notice(install):
    entry = install("mean", name="chest")
    # onnxruntime-gpu lists CUDA here even where it cannot start: that is the case handled.
    assert CUDA in runtime.available_providers()
    session = get_session(entry, device="cuda")
    if _driver_present():  # a machine with a real GPU
        assert session.provider == CUDA and session.notice == ""
    else:
        assert session.provider == CPU
        assert session.notice == "Model 'chest' runs on the CPU: no NVIDIA driver was found."
    # It still predicts, on whatever provider it got.
    out = session.run(np.full((1, 1, 16, 16), 0.5, np.float32))
    np.testing.assert_allclose(out.probabilities, [[0.5, 0.5]], atol=1e-3)
    report = runtime.provider_report("auto", use_tensorrt=False)
    assert report.active == session.provider
    assert report.requested == [CUDA, CPU]
    assert bool(report.notice) == (session.provider == CPU)


def test_tensorrt_is_only_asked_for_when_the_setting_says_so(install):
    assert runtime.requested_providers("auto", use_tensorrt=False) == [CUDA, CPU]
    assert runtime.requested_providers("auto", use_tensorrt=True)[0] == runtime.TENSORRT
    assert runtime.requested_providers("cpu", use_tensorrt=True) == [CPU]
    with pytest.raises(ModelError, match="Unknown device 'tpu'"):
        runtime.requested_providers("tpu")
    session = get_session(install("mean"), device="auto", use_tensorrt=True)
    assert session.provider in (runtime.TENSORRT, CUDA, CPU)
    assert (session.notice == "") == (session.provider == runtime.TENSORRT)


def test_preloading_cuda_libraries_stays_off_stdout(capfd):
    ran = runtime.preload_cuda_libraries()
    import importlib.util

    import onnxruntime

    expected = hasattr(onnxruntime, "preload_dlls") and importlib.util.find_spec("nvidia") is not None
    assert ran == expected
    assert capfd.readouterr().out == ""


def test_sessions_are_cached_and_created_once_across_threads(install):
    entry = install("mean")
    sessions = []
    barrier = threading.Barrier(6)

    def worker():
        barrier.wait()
        sessions.append(get_session(entry, device="cpu"))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sessions) == 6 and all(s is sessions[0] for s in sessions)
    assert get_session(entry, device="cpu") is sessions[0]
    runtime.clear_session_cache()
    assert get_session(entry, device="cpu") is not sessions[0]


def test_warm_up_runs_one_dummy_input(install):
    entry = install("cam", builder_args={"height": 64, "width": 64},
                    input={"height": 64, "width": 64}, outputs={"cam": "cam"})
    session = runtime.warm_up(entry, device="cpu")
    assert session.warmed_up and session.has_cam
    assert session.warm_up() > 0


@pytest.mark.parametrize("activation", ["softmax", "sigmoid", "none"])
def test_third_party_single_output_logits_get_the_card_activation(install, activation):
    entry = install("logits", builder_args={"classes": 3, "height": 8, "width": 8},
                    classes=["x", "y", "z"], operating_points={},
                    input={"height": 8, "width": 8, "name": "input"},
                    outputs={"probabilities": "logits", "activation": activation})
    out = get_session(entry, device="cpu").run(np.full((1, 1, 8, 8), 1.0, np.float32))
    logits = np.array([0.0, 1.0, 2.0])
    expected = {"softmax": np.exp(logits) / np.exp(logits).sum(),
                "sigmoid": 1 / (1 + np.exp(-logits)), "none": logits}[activation]
    np.testing.assert_allclose(out.probabilities[0], expected, rtol=1e-5)


def test_a_model_with_a_fixed_batch_of_one_runs_any_batch(install):
    session = get_session(install("mean", builder_args={"batch": 1}), device="cpu")
    assert session.fixed_batch == 1
    values = np.array([0.1, 0.4, 0.9], np.float32)
    out = session.run(np.broadcast_to(values[:, None, None, None], (3, 1, 16, 16)).copy())
    np.testing.assert_allclose(out.probabilities[:, 1], values, atol=1e-6)


def test_a_model_changed_after_import_is_refused(install):
    entry = install("mean")
    with open(entry.onnx_path, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelError, match="no longer matches its card"):
        get_session(entry, device="cpu")


def test_wrong_batch_shape_is_one_sentence(install):
    session = get_session(install("mean"), device="cpu")
    with pytest.raises(ModelError, match=r"expects input batches of shape N x 1x16x16, not 1x1x8x8"):
        session.run(np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(ModelError, match="has no class activation map output"):
        session.run(np.zeros((1, 1, 16, 16), np.float32), with_cam=True)


def test_inference_never_imports_torch(tmp_path):
    code = """
import sys
from pathlib import Path
import numpy as np
from PIL import Image
from tests.inference import onnx_models
from medviewer.inference import audit, predict, preprocess, registry, runtime, saliency
from medviewer.cli import main
path = onnx_models.mean_model(Path(sys.argv[1]) / "m.onnx")
onnx_models.write_card(path)
registry.import_model(path)
Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(Path(sys.argv[1]) / "i.png")
assert main(["models", "list", "--json"]) == 0
assert main(["predict", str(Path(sys.argv[1]) / "i.png")]) == 0
assert main(["saliency", str(Path(sys.argv[1]) / "i.png"), "-o", str(Path(sys.argv[1]) / "o.png")]) == 0
print("torch" in sys.modules, "torchvision" in sys.modules)
"""
    env = {"MEDVIEWER_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                            text=True, env=env, cwd=Path(runtime.__file__).parents[2],
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False False"
