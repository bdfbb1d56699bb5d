"""`medviewer --self-test`: a headless end-to-end check of an installation.

It proves that what a hospital IT person installed works on this machine, without a
screen and without touching anyone's data: the bundled sample study is indexed and a frame
decoded for display; the default model (the first built-in one) loads and reads that
image; a saliency map is computed; the GUI's main window is created offscreen, shows the
sample image (pyqtgraph, Qt platform plugins) and closes; a label is written to a temporary
store and read back. In the Studio edition torch and the training code are imported too.

Everything runs under a temporary ``MEDVIEWER_HOME``. ``MEDVIEWER_MODELS_DIR`` (or the
``models_dir`` argument) points the built-in models folder elsewhere. The result is one
line: on success (exit 0) with the edition, model, execution provider and timings; on
failure (exit 1) the step that failed and the reason.

:func:`installation_info` is the same facts for Help > About.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from medviewer import __version__

log = logging.getLogger(__name__)

BUILD_INFO_NAME = "medviewer-build.json"  # written into a bundle by packaging/build.py
GUI_TIMEOUT_S = 60.0
SELFTEST_LABEL_SET = "self-test"
# The Qt platform plugin the installed app needs to show a window on this OS.
NATIVE_QT_PLATFORMS = {"linux": "xcb", "win32": "windows", "darwin": "cocoa"}


class SelfTestFailure(Exception):
    """A check that did not pass; ``str()`` is the reason, one sentence."""


@dataclass
class SelfTestReport:
    edition: str = ""
    model: str = ""
    provider: str = ""
    notice: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        times = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.timings.items())
        provider = self.provider + (f" ({self.notice.rstrip('.')})" if self.notice else "")
        gpu_note = f"; {gpu_runtime_note()}" if gpu_runtime_note() else ""
        return (f"MedViewer self-test passed: {self.edition} edition {__version__}, model "
                f"{self.model} on {provider}{gpu_note}; {times}")


# ---------------------------------------------------------------- what is installed


def build_info() -> dict[str, Any]:
    """What packaging/build.py recorded in the bundle; ``{'edition': 'development'}`` otherwise."""
    from medviewer import paths

    try:
        info = json.loads((paths.PROJECT_ROOT / BUILD_INFO_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"edition": "development"}
    return info if isinstance(info, dict) and info.get("edition") else {"edition": "development"}


def gpu_runtime_note() -> str:
    """'' unless this is a bundle whose optional GPU runtime component is not installed."""
    from medviewer import paths

    separate = build_info().get("gpu_runtime") == "separate"
    if separate and not (paths.PROJECT_ROOT / "nvidia").is_dir():
        return "GPU runtime not installed (medviewer-viewer-gpu adds NVIDIA GPU support)"
    return ""


def torch_installed() -> bool:
    """Whether the training engine can be used here (Studio, or a development install)."""
    return importlib.util.find_spec("torch") is not None


def _distribution_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


def installation_info(with_provider: bool = True) -> dict[str, str]:
    """Versions of the app, Qt, onnxruntime, torch (where installed) and the active provider.

    The provider is found by starting a tiny onnxruntime session once per process (cached);
    ``with_provider=False`` skips it.
    """
    info: dict[str, str] = {"MedViewer": __version__, "Edition": build_info()["edition"]}
    pyside = _distribution_version("PySide6-Essentials") or _distribution_version("PySide6")
    # PySide6 wheels carry the Qt release of the same number; metadata needs no Qt import.
    info["Qt"] = f"{pyside} (PySide6)" if pyside else "not installed"
    ort_version = ""
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        pass
    ort_build = "onnxruntime-gpu" if _distribution_version("onnxruntime-gpu") else "onnxruntime"
    info["onnxruntime"] = f"{ort_version} ({ort_build})" if ort_version else "not installed"
    if torch_installed():
        version = _distribution_version("torch")
        if not version:  # a bundle without torch's metadata
            from medviewer.training.versions import torch_version

            version = torch_version()
        info["torch"] = version
    else:
        info["torch"] = "not included (training needs the Studio edition)"
    if gpu_runtime_note():
        info["GPU runtime"] = gpu_runtime_note()
    if with_provider and ort_version:
        from medviewer.inference import runtime

        try:
            report = runtime.provider_report()
        except Exception as exc:  # noqa: BLE001 - About must open whatever onnxruntime does
            info["Execution provider"] = f"unknown ({exc})"
        else:
            active = report.active
            info["Execution provider"] = active + (f" — {report.notice}" if report.notice else "")
    return info


# ---------------------------------------------------------------- the checks


@contextmanager
def _temporary_home() -> Iterator[Path]:
    """A throwaway MEDVIEWER_HOME, so no user data, settings or caches are touched."""
    previous = os.environ.get("MEDVIEWER_HOME")
    with tempfile.TemporaryDirectory(prefix="medviewer-selftest-") as folder:
        os.environ["MEDVIEWER_HOME"] = folder
        try:
            yield Path(folder)
        finally:
            if previous is None:
                os.environ.pop("MEDVIEWER_HOME", None)
            else:
                os.environ["MEDVIEWER_HOME"] = previous


def one_line(exc: BaseException) -> str:
    from medviewer.errors import UserError

    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(exc, UserError):
        return first or type(exc).__name__
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@dataclass(frozen=True)
class GuiChecks:
    """The checks that need Qt, registered by the caller (``medviewer.cli`` passes
    ``medviewer.gui.selftest_window``'s), so nothing outside ``gui/`` imports the GUI."""

    main_window: Callable[[float, bool], str]  # (timeout_s, studio) -> the Qt platform
    training_tools: Callable[[], str]  # -> torch's version


class _SelfTest:
    def __init__(self, home: Path, models_dir: Path | None, gui_checks: GuiChecks) -> None:
        self.home = home
        self.models_dir = models_dir
        self.gui_checks = gui_checks
        self.report = SelfTestReport(edition=build_info()["edition"])
        self.instance: Any = None
        self.model: Any = None

    def step(self, name: str, check: Callable[[], None]) -> None:
        started = time.perf_counter()
        try:
            check()
        except SelfTestFailure as exc:
            raise SelfTestFailure(f"{name}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line
            log.debug("Self-test step %s failed", name, exc_info=True)
            raise SelfTestFailure(f"{name}: {one_line(exc)}") from None
        self.report.timings[name] = time.perf_counter() - started

    # -- the steps
    def sample_study(self) -> None:
        from medviewer import paths
        from medviewer.dicom.catalog import index_path
        from medviewer.dicom.reader import open_instance
        from medviewer.jobs import run_to_end

        folder = paths.SAMPLE_STUDY_DIR
        if not folder.is_dir():
            raise SelfTestFailure(f"the bundled sample study {folder} is missing")
        catalog = run_to_end(index_path(folder))
        if catalog.errors:
            first = catalog.errors[0]
            raise SelfTestFailure(f"{len(catalog.errors)} sample file(s) could not be indexed, "
                                  f"e.g. {first.path.name}: {first.reason}")
        records = catalog.instances()
        if not records:
            raise SelfTestFailure(f"the sample study {folder} holds no images")
        self.instance = open_instance(records[0].path)
        image = self.instance.display_frame(0)
        if image.dtype.name != "uint8" or image.shape[:2] != (self.instance.rows,
                                                              self.instance.columns):
            raise SelfTestFailure(f"the sample image decoded to {image.dtype} {image.shape}, "
                                  "not an 8-bit image of its own size")
        if int(image.max()) == int(image.min()):
            raise SelfTestFailure("the sample image decoded to a blank frame")
        self.report.facts["images"] = str(len(records))
        _check_decoders()

    def load_model(self) -> None:
        from medviewer import paths
        from medviewer.inference import registry, runtime

        if self.models_dir is not None:
            paths.BUILTIN_MODELS_DIR = Path(self.models_dir)
        entries, problems = registry.scan_models(include_user=False)
        if not entries:
            detail = f" ({problems[0].reason})" if problems else ""
            raise SelfTestFailure(f"no built-in model is installed in {paths.BUILTIN_MODELS_DIR}"
                                  f"{detail}")
        entry = entries[0]
        self.model = runtime.get_session(entry, use_tensorrt=False)
        self.model.warm_up()
        self.report.model = entry.key
        self.report.provider = self.model.provider
        self.report.notice = self.model.notice

    def predict(self) -> None:
        import numpy as np

        from medviewer.inference.predict import predict_instance

        prediction = predict_instance(self.model, self.instance, audit=False)
        probabilities = np.array([score.probability for score in prediction.scores])
        if prediction.error or not np.all(np.isfinite(probabilities)):
            raise SelfTestFailure(f"the model gave no usable scores ({prediction.error or 'NaN'})")
        if not np.all((probabilities >= 0) & (probabilities <= 1)):
            raise SelfTestFailure("the model's scores are not probabilities in [0, 1]")

    def saliency(self) -> None:
        import numpy as np

        from medviewer.inference.saliency import saliency_for

        # Occlusion with large patches keeps the check short for a model without CAM output.
        _prediction, saliency = saliency_for(self.model, self.instance, patch=64, stride=64)
        values = saliency.values
        if values.shape != (self.instance.rows, self.instance.columns):
            raise SelfTestFailure(f"the saliency map is {values.shape}, not the image's size")
        if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
            raise SelfTestFailure("the saliency map has values outside [0, 1]")
        self.report.facts["saliency"] = saliency.method

    def gui(self) -> None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        self.report.facts["qt_platform"] = self.gui_checks.main_window(GUI_TIMEOUT_S,
                                                                       torch_installed())

    def labels(self) -> None:
        from medviewer.labels.store import ImageRef, LabelStore

        store_path = self.home / "selftest-labels.db"
        image = ImageRef.from_instance(self.instance)
        store = LabelStore(store_path, reader="selftest")
        try:
            store.create_label_set(SELFTEST_LABEL_SET, ["normal", "abnormal"])
            store.set_label(SELFTEST_LABEL_SET, image, "abnormal")
        finally:
            store.close()
        reopened = LabelStore(store_path, reader="selftest")
        try:
            label = reopened.label_for(SELFTEST_LABEL_SET, image.key)
        finally:
            reopened.close()
        if label is None or tuple(label.classes) != ("abnormal",):
            raise SelfTestFailure(f"the label read back from {store_path.name} is {label}, "
                                  "not the one written")

    def training(self) -> None:
        """Studio only: train one epoch on images made from the sample study, export it to
        ONNX and read an image with it: torch, torchvision, the ONNX exporter and
        onnxruntime together, as the training wizard and the viewer use them. Loading the
        tools the wizard's way must leave garbage collection to the GUI thread (a collection
        on the training thread can delete Qt objects in use)."""
        from medviewer.inference import registry
        from medviewer.inference.predict import predict_paths
        from medviewer.jobs import run_to_end
        from medviewer.training import export, trainer

        self.report.facts["torch"] = self.gui_checks.training_tools()
        data_dir = self.home / "selftest-training-images"
        _write_two_class_images(self.instance.display_frame(0), data_dir)
        config = trainer.TrainConfig(
            data=str(data_dir), arch="smallcnn", epochs=1, batch_size=4, input_size=32,
            val_fraction=0.25, test_fraction=0.25, seed=0, device="cpu", num_threads=1,
            patience=1, use_cache=False)
        run_dir = self.home / "selftest-training-run"
        result = run_to_end(trainer.train(config, run_dir))
        if not Path(result.best_checkpoint or "").is_file():
            raise SelfTestFailure("one epoch of training kept no checkpoint")
        exported = run_to_end(export.export_run(run_dir, "selftest-trained", "0",
                                                out_dir=self.home / "selftest-models"))
        # Registered in this run's temporary home; the viewer's own reading path runs it.
        entry = registry.import_model(exported.onnx_path, exported.card_path)
        image = next((data_dir / "plain").glob("*.png"))
        prediction = predict_paths([image], entry, audit=False)[0]
        if not prediction.ok:
            raise SelfTestFailure(f"the model trained here could not read {image.name}: "
                                  f"{prediction.error}")


def _write_two_class_images(image: Any, folder: Path, per_class: int = 8) -> None:
    """A folder per class for a training smoke test: shifted crops of the sample image,
    as they are and inverted, so one epoch has something to tell apart."""
    import numpy as np
    from PIL import Image

    rows, columns = image.shape[:2]
    crop = min(rows, columns) * 3 // 4
    for class_name, invert in (("plain", False), ("inverted", True)):
        (folder / class_name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            top = (rows - crop) * index // max(per_class - 1, 1)
            left = (columns - crop) * (per_class - 1 - index) // max(per_class - 1, 1)
            pixels = np.ascontiguousarray(image[top:top + crop, left:left + crop])
            if pixels.ndim == 3:
                pixels = pixels[..., 0]
            Image.fromarray(255 - pixels if invert else pixels).save(
                folder / class_name / f"crop{index}.png")


def _check_decoders() -> None:
    """The sample is uncompressed: check the compressed-image decoders are there too.

    pylibjpeg's plugins are found through package metadata (entry points), which a bundle
    must carry; GDCM is the reader's fallback.
    """
    from pydicom import uid
    from pydicom.pixels import get_decoder

    missing = [syntax.name for syntax in (uid.JPEGBaseline8Bit, uid.JPEGLosslessSV1,
                                          uid.JPEGLSLossless, uid.JPEG2000Lossless,
                                          uid.RLELossless)
               if "pylibjpeg" not in get_decoder(syntax).available_plugins]
    if missing:
        raise SelfTestFailure(f"no pylibjpeg decoder for {', '.join(missing)}")
    try:
        import gdcm  # noqa: F401 - the fallback decoder
    except ImportError as exc:
        raise SelfTestFailure(f"the GDCM fallback decoder cannot be loaded ({exc})") from None


def run_self_test(gui_checks: GuiChecks, models_dir: str | os.PathLike | None = None,
                  out: TextIO | None = None, err: TextIO | None = None,
                  with_training: bool | None = None) -> int:
    """Run every check; print one line; 0 when all passed, 1 with the reason otherwise.

    ``gui_checks`` are the Qt checks (``medviewer.gui.selftest_window.GUI_CHECKS``);
    ``with_training`` (default: where torch is installed) adds the training-engine check.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    started = time.perf_counter()
    with _temporary_home() as home:
        test = _SelfTest(home, Path(models_dir) if models_dir else None, gui_checks)
        try:
            test.step("study", test.sample_study)
            test.step("model load", test.load_model)
            test.step("predict", test.predict)
            test.step("saliency", test.saliency)
            test.step("window", test.gui)
            test.step("labels", test.labels)
            if torch_installed() if with_training is None else with_training:
                test.step("training", test.training)
        except SelfTestFailure as exc:
            print(f"MedViewer self-test failed at {exc}", file=err, flush=True)
            return 1
        finally:
            test.model = None
            from medviewer.inference import runtime

            runtime.clear_session_cache()
    test.report.timings["total"] = time.perf_counter() - started
    print(test.report.summary(), file=out, flush=True)
    return 0
