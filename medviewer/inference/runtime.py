"""onnxruntime sessions: provider choice (TensorRT > CUDA > CPU), CPU fallback, caching, warm-up.

One :class:`ModelSession` per model and device choice is created on first use and cached
(creation is thread-safe). The provider actually in use is ``session.get_providers()[0]``;
when a GPU was wanted but could not be used the session carries a one-sentence ``notice`` for
the GUI and the CLI. Where torch's pip CUDA libraries are installed (the Studio edition),
they are preloaded for onnxruntime instead of needing a second copy; torch itself is never
imported.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.inference.model_card import ModelEntry, ModelError, file_sha256

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
CPU = "CPUExecutionProvider"
GPU_PROVIDERS = (TENSORRT, CUDA)
DEVICES = ("auto", "cuda", "cpu")

_ort_lock = threading.Lock()
_preload_state: dict[str, Any] = {}


def _ort():
    """Import onnxruntime once, quietening its own console logging unless we log debug."""
    import onnxruntime as ort

    if "logger" not in _preload_state:
        # onnxruntime prints provider-load failures to stderr; the notice says it in one
        # sentence instead (verbose mode keeps onnxruntime's own warnings).
        ort.set_default_logger_severity(2 if log.isEnabledFor(logging.DEBUG) else 4)
        _preload_state["logger"] = True
    return ort


def available_providers() -> list[str]:
    """Providers this onnxruntime build offers (not a promise that they can start)."""
    return list(_ort().get_available_providers())


def preload_cuda_libraries() -> bool:
    """Load the pip-installed NVIDIA CUDA/cuDNN libraries (torch's, in the Studio install).

    Uses ``onnxruntime.preload_dlls`` where present; returns whether it ran. Never imports
    torch. Its console messages go to the debug log so ``--json`` output stays clean.
    """
    with _ort_lock:
        if "preloaded" in _preload_state:
            return _preload_state["preloaded"]
        ort = _ort()
        ran = False
        import importlib.util

        if hasattr(ort, "preload_dlls") and importlib.util.find_spec("nvidia") is not None:
            captured = io.StringIO()
            try:
                with contextlib.redirect_stdout(captured):
                    ort.preload_dlls()
                ran = True
            except Exception as exc:  # noqa: BLE001 - a missing library is reported by the session
                log.debug("onnxruntime.preload_dlls failed: %s", exc)
            if captured.getvalue().strip():
                log.debug("preload_dlls: %s", captured.getvalue().strip())
        _preload_state["preloaded"] = ran
        return ran


def _nvidia_driver_present() -> bool:
    name = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


def _gpu_failure_reason(ort: Any, detail: str = "") -> str:
    if CUDA not in ort.get_available_providers():
        return "this onnxruntime build has no CUDA support"
    if sys.platform != "darwin" and not _nvidia_driver_present():
        return "no NVIDIA driver was found"
    try:
        from onnxruntime.capi import build_and_package_info as info

        needs = f" (it needs CUDA {getattr(info, 'cuda_version', '?')} and cuDNN 9)"
    except ImportError:
        needs = ""
    text = f"the CUDA provider could not start{needs}"
    return f"{text}: {detail}" if detail else text


def requested_providers(device: str = "auto", use_tensorrt: bool = False) -> list[str]:
    """The provider list to ask onnxruntime for, best first."""
    if device not in DEVICES:
        raise ModelError(f"Unknown device '{device}' (choose one of {', '.join(DEVICES)}).")
    if device == "cpu":
        return [CPU]
    available = available_providers()
    if device == "auto" and CUDA not in available:
        return [CPU]  # a CPU-only build (e.g. macOS): nothing was wanted that could fail
    wanted = [TENSORRT] if use_tensorrt else []
    return wanted + [CUDA, CPU]


def _provider_options(providers: list[str]) -> list[dict[str, str]]:
    from medviewer import paths

    options: list[dict[str, str]] = []
    for provider in providers:
        if provider == TENSORRT:
            cache = paths.user_cache_dir() / "tensorrt"
            cache.mkdir(parents=True, exist_ok=True)
            options.append({"trt_engine_cache_enable": "True",
                            "trt_engine_cache_path": str(cache)})
        elif provider == CUDA:
            # Exhaustive cuDNN search re-runs for every new batch shape; heuristics start fast.
            options.append({"cudnn_conv_algo_search": "HEURISTIC"})
        else:
            options.append({})
    return options


def _session_options(ort: Any, threads: int | None) -> Any:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 2 if log.isEnabledFor(logging.DEBUG) else 4
    if threads:
        options.intra_op_num_threads = threads
    return options


def _create(ort: Any, model_path: Path, providers: list[str], threads: int | None) -> Any:
    return ort.InferenceSession(str(model_path), sess_options=_session_options(ort, threads),
                                providers=providers,
                                provider_options=_provider_options(providers))


def create_session(model_path: str | os.PathLike, device: str = "auto",
                   use_tensorrt: bool = False, threads: int | None = None,
                   subject: str | None = None) -> tuple[Any, str]:
    """An ``onnxruntime.InferenceSession`` and a notice ('' when the wanted provider runs).

    A GPU provider that is missing, fails to load or fails to create the session falls back
    to the CPU; only a model the CPU cannot load either raises ModelError. ``subject`` starts
    the notice sentence (default "Model NAME.onnx runs").
    """
    ort = _ort()
    model_path = Path(model_path)
    subject = subject or f"Model {model_path.name} runs"
    providers = requested_providers(device, use_tensorrt)
    notice = ""
    if providers[0] != CPU:
        # Without a driver the GPU cannot run: skip loading ~2 GB of CUDA libraries for nothing.
        no_driver = sys.platform != "darwin" and not _nvidia_driver_present()
        if CUDA not in available_providers() or no_driver:
            providers = [CPU]
            notice = f"{subject} on the CPU: {_gpu_failure_reason(ort)}."
        else:
            preload_cuda_libraries()
    session = None
    if providers[0] != CPU:
        try:
            session = _create(ort, model_path, providers, threads)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail/RuntimeException
            log.warning("GPU session creation failed, using the CPU: %s", _first_line(exc))
            notice = f"{subject} on the CPU: {_gpu_failure_reason(ort, _first_line(exc))}."
            session = None
        else:
            active = session.get_providers()[0]
            if active == CPU:
                notice = f"{subject} on the CPU: {_gpu_failure_reason(ort)}."
            elif providers[0] == TENSORRT and active != TENSORRT:
                notice = f"{subject} on CUDA without TensorRT: TensorRT could not start."
    if session is None:
        try:
            session = _create(ort, model_path, [CPU], threads)
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"The model {model_path.name} cannot be loaded by onnxruntime "
                             f"({_first_line(exc)}).") from None
    if notice:
        log.info("%s", notice)
    return session, notice


def check_loadable(model_path: str | os.PathLike) -> None:
    """Raise ModelError unless onnxruntime can load the model on the CPU."""
    create_session(model_path, device="cpu", threads=1)


_ORT_SOURCE_PREFIX = re.compile(r"\.(?:cc|cpp|h):\d+ \S+?\(.*?\)\s+(\S.*)$")


def _first_line(exc: BaseException) -> str:
    """The readable part of an onnxruntime message (no source paths or C++ signatures)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    match = _ORT_SOURCE_PREFIX.search(line)
    if match:
        line = match.group(1)
    elif "] :" in line:
        line = line.split("] :", 1)[1].strip()
        line = re.sub(r"^\d+ : [A-Z_]+ : ", "", line)
    return line[:300].rstrip(".")


# ---------------------------------------------------------------- the cached model session


@dataclass(frozen=True)
class RunOutput:
    probabilities: np.ndarray  # [N, C] float32, after the card's activation and calibration
    cam: np.ndarray | None  # [N, C, h, w] float32 when asked for and the model has it
    seconds: float  # wall time of session.run for the whole batch
    features: np.ndarray | None = None  # [N, D] pooled features, when the card names them
    uncalibrated: np.ndarray | None = None  # [N, C] before calibration (None: no calibration)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * logits))  # overflow-free form


class ModelSession:
    """A model ready to run: the card, the onnxruntime session and the provider in use."""

    def __init__(self, entry: ModelEntry, session: Any, notice: str, device: str,
                 threads: int | None = None) -> None:
        self.entry = entry
        self.card = entry.card
        self.device = device
        self.notice = notice
        self._threads = threads
        self._session = session
        self._lock = threading.Lock()
        self._warmed = False
        self._describe_io()

    def _describe_io(self) -> None:
        model_input = self._session.get_inputs()[0]
        self.input_name: str = model_input.name
        self.input_dtype = np.float16 if "float16" in model_input.type else np.float32
        batch = model_input.shape[0] if model_input.shape else None
        self.fixed_batch: int | None = batch if isinstance(batch, int) and batch > 0 else None
        outputs = {o.name for o in self._session.get_outputs()}
        self.has_cam = bool(self.card.outputs.cam) and self.card.outputs.cam in outputs
        self.has_features = (bool(self.card.outputs.features)
                             and self.card.outputs.features in outputs)

    @property
    def session(self) -> Any:
        return self._session

    @property
    def provider(self) -> str:
        """The execution provider actually in use (``session.get_providers()[0]``)."""
        return self._session.get_providers()[0]

    @property
    def on_gpu(self) -> bool:
        return self.provider in GPU_PROVIDERS

    @property
    def input_shape(self) -> tuple[int, int, int]:
        spec = self.card.input
        return spec.channels, spec.height, spec.width

    def run(self, batch: np.ndarray, with_cam: bool = False) -> RunOutput:
        """Run a float32 batch [N, C, H, W]; probabilities come back after the activation.

        A GPU failure while running falls back to the CPU once (with a notice) and retries.
        """
        if batch.ndim != 4 or tuple(batch.shape[1:]) != self.input_shape:
            raise ModelError(f"Model '{self.card.name}' expects input batches of shape "
                             f"N x {'x'.join(map(str, self.input_shape))}, not "
                             f"{'x'.join(map(str, batch.shape))}.")
        if with_cam and not self.has_cam:
            raise ModelError(f"Model '{self.card.name}' has no class activation map output.")
        names = [self.card.outputs.probabilities]
        if with_cam:
            names.append(self.card.outputs.cam)
        if self.has_features:  # the OOD score's input, from this same pass
            names.append(self.card.outputs.features)
        feed = np.ascontiguousarray(batch, dtype=self.input_dtype)
        started = time.perf_counter()
        try:
            raw = self._run_chunks(names, feed)
        except Exception as exc:  # noqa: BLE001
            if not self.on_gpu:
                raise ModelError(f"Model '{self.card.name}' failed to run "
                                 f"({_first_line(exc)}).") from None
            self._fall_back_to_cpu(_first_line(exc))
            started = time.perf_counter()
            try:
                raw = self._run_chunks(names, feed)
            except Exception as exc2:  # noqa: BLE001
                raise ModelError(f"Model '{self.card.name}' failed to run "
                                 f"({_first_line(exc2)}).") from None
        seconds = time.perf_counter() - started
        scores = np.asarray(raw[0], dtype=np.float32)
        n_classes = len(self.card.classes)
        if scores.ndim != 2 or scores.shape != (feed.shape[0], n_classes):
            raise ModelError(f"Model '{self.card.name}' returned scores of shape "
                             f"{scores.shape}, not {feed.shape[0]} x {n_classes} as its card says.")
        activation = self.card.outputs.activation
        if activation == "softmax":
            scores = softmax(scores)
        elif activation == "sigmoid":
            scores = sigmoid(scores)
        uncalibrated = None
        if self.card.calibration is not None:
            from medviewer.inference.calibration import apply_temperature

            uncalibrated = scores
            scores = apply_temperature(scores, self.card.calibration.temperature, self.card.task)
        cam = None
        if with_cam:
            cam = np.asarray(raw[1], dtype=np.float32)
            if cam.ndim != 4 or cam.shape[:2] != (feed.shape[0], n_classes):
                raise ModelError(f"Model '{self.card.name}' returned class activation maps of "
                                 f"shape {cam.shape}, not {feed.shape[0]} x {n_classes} x h x w.")
        features = np.asarray(raw[-1], dtype=np.float32) if self.has_features else None
        return RunOutput(scores, cam, seconds, features, uncalibrated)

    def _run_chunks(self, names: list[str], feed: np.ndarray) -> list[np.ndarray]:
        session = self._session
        size = self.fixed_batch
        if size is None or feed.shape[0] == size:
            return session.run(names, {self.input_name: feed})
        # A model exported with a fixed batch size: run in chunks, padding the last one.
        parts: list[list[np.ndarray]] = []
        for start in range(0, feed.shape[0], size):
            chunk = feed[start:start + size]
            n = chunk.shape[0]
            if n < size:
                chunk = np.concatenate([chunk, np.zeros((size - n, *chunk.shape[1:]), chunk.dtype)])
            parts.append([out[:n] for out in session.run(names, {self.input_name: chunk})])
        return [np.concatenate([p[i] for p in parts]) for i in range(len(names))]

    def _fall_back_to_cpu(self, detail: str) -> None:
        with self._lock:
            if not self.on_gpu:
                return
            ort = _ort()
            log.warning("Model run failed on %s, switching to the CPU: %s", self.provider, detail)
            self._session = _create(ort, self.entry.onnx_path, [CPU], self._threads)
            self.notice = (f"Model '{self.card.name}' runs on the CPU: the GPU failed "
                           f"while running it ({detail}).")
            self._describe_io()

    def warm_up(self) -> float:
        """Run one dummy batch (GPU kernels, memory arenas); call it off the GUI thread."""
        started = time.perf_counter()
        dummy = np.zeros((self.fixed_batch or 1, *self.input_shape), np.float32)
        self.run(dummy, with_cam=self.has_cam)
        self._warmed = True
        return time.perf_counter() - started

    @property
    def warmed_up(self) -> bool:
        return self._warmed


# ---------------------------------------------------------------- the cache


_sessions: dict[tuple, ModelSession] = {}
_sessions_lock = threading.Lock()
_key_locks: dict[tuple, threading.Lock] = {}
_hash_cache: dict[tuple, str] = {}


def _verified_hash(entry: ModelEntry) -> None:
    path = entry.onnx_path
    try:
        stat = path.stat()
    except OSError:
        raise ModelError(f"The model file {path} is missing.") from None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    digest = _hash_cache.get(key)
    if digest is None:
        digest = file_sha256(path)
        _hash_cache[key] = digest
    if digest != entry.card.sha256:
        raise ModelError(f"The model file {path.name} is refused: its SHA-256 no longer "
                         "matches its card (the file was changed after it was installed).")


def _use_tensorrt_setting() -> bool:
    from medviewer.settings import load_settings

    return bool(load_settings().use_tensorrt)


def get_session(entry: ModelEntry, device: str = "auto", use_tensorrt: bool | None = None,
                threads: int | None = None) -> ModelSession:
    """The cached session for a model (created on first use; safe to call from any thread).

    ``use_tensorrt`` defaults to ``settings.use_tensorrt``. The file's SHA-256 is checked
    against the card before a session is created.
    """
    if use_tensorrt is None:
        use_tensorrt = _use_tensorrt_setting()
    key = (str(entry.onnx_path.resolve()), entry.card.sha256, device, bool(use_tensorrt), threads)
    with _sessions_lock:
        cached = _sessions.get(key)
        if cached is not None:
            return cached
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:  # one creation per model; other models are not held up
        with _sessions_lock:
            cached = _sessions.get(key)
        if cached is not None:
            return cached
        _verified_hash(entry)
        started = time.perf_counter()
        session, notice = create_session(entry.onnx_path, device, bool(use_tensorrt), threads,
                                         subject=f"Model '{entry.name}' runs")
        model_session = ModelSession(entry, session, notice, device, threads)
        log.info("Model %s loaded on %s in %.2f s", entry.key, model_session.provider,
                 time.perf_counter() - started)
        with _sessions_lock:
            _sessions[key] = model_session
        return model_session


def warm_up(entry: ModelEntry, device: str = "auto") -> ModelSession:
    """Create (or fetch) the session and run one dummy input; for a worker thread."""
    model_session = get_session(entry, device)
    if not model_session.warmed_up:
        model_session.warm_up()
    return model_session


def clear_session_cache() -> None:
    with _sessions_lock:
        _sessions.clear()
        _key_locks.clear()
    _hash_cache.clear()


@dataclass(frozen=True)
class ProviderReport:
    available: list[str]  # what this onnxruntime build offers
    requested: list[str]  # what MedViewer would ask for
    active: str  # what a session actually gets on this machine
    notice: str


_probe_cache: dict[tuple, ProviderReport] = {}


def provider_report(device: str = "auto", use_tensorrt: bool | None = None) -> ProviderReport:
    """Which provider a model would run on here, found by starting a tiny session once."""
    if use_tensorrt is None:
        use_tensorrt = _use_tensorrt_setting()
    key = (device, bool(use_tensorrt))
    if key in _probe_cache:
        return _probe_cache[key]
    import tempfile

    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "provider-probe.onnx"
        onnx.save(model, str(path))
        session, notice = create_session(path, device, bool(use_tensorrt), threads=1,
                                         subject="Models run")
        active = session.get_providers()[0]
        del session
    report = ProviderReport(available_providers(), requested_providers(device, bool(use_tensorrt)),
                            active, notice)
    _probe_cache[key] = report
    return report
