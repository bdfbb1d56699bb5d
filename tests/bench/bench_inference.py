"""Inference benchmarks, each against a baseline measured in the same run (CPU only).

1. onnxruntime vs torch eager on the same architecture and weights (torchvision resnet18 and
   densenet121, random weights, 1-channel 224x224 input), batch 1 and 16. Target: ORT >= 1.5x.
2. ``predict_paths`` end to end over 500 kermany224 test JPEGs (decode, preprocess, batch,
   audit) vs pure ``session.run`` on tensors made beforehand. Target: >= 0.8 of pure.
3. CAM saliency (one pass with the 'cam' output, map put back on the image grid) vs plain
   single-image inference with the same network exported without the cam output.
   Target: <= 1.15x.
4. Occlusion sensitivity cost for one image (forward passes, seconds).

The bench may import torch (it lives in tests/bench); medviewer.inference never does.
Run alone with ``.venv/bin/python -m tests.bench inference``.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KERMANY_TEST = PROJECT_ROOT.parent / "shared" / "data" / "xray" / "kermany224" / "test"
E2E_IMAGES = 500
SIZE = 224


def _paired_medians(first, second, repeats: int, warmup: int = 1) -> tuple[float, float]:
    """Median seconds of two callables timed alternately, so machine load hits both alike."""
    for _ in range(warmup):
        first()
        second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, bucket in ((first, times[0]), (second, times[1])):
            started = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - started)
    return statistics.median(times[0]), statistics.median(times[1])


# ---------------------------------------------------------------- networks and export


def _one_channel(name: str):
    import torch
    import torchvision

    torch.manual_seed(0)
    if name == "resnet18":
        net = torchvision.models.resnet18(weights=None, num_classes=2)
        net.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    elif name == "densenet121":
        net = torchvision.models.densenet121(weights=None, num_classes=2)
        net.features.conv0 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    else:
        raise ValueError(name)
    return net.eval()


def _export(module, path: Path, output_names: list[str]) -> Path:
    import torch

    dynamic = {"image": {0: "N"}, **{name: {0: "N"} for name in output_names}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(module, (torch.zeros(1, 1, SIZE, SIZE),), str(path), dynamo=False,
                          input_names=["image"], output_names=output_names,
                          dynamic_axes=dynamic, opset_version=17)
    return path


class _Resnet18Head:
    """resnet18 as MedViewer's trainer exports it: probabilities and, optionally, CAM."""

    @staticmethod
    def build(with_cam: bool):
        import torch

        net = _one_channel("resnet18")

        class Exported(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.body = torch.nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                                                net.layer1, net.layer2, net.layer3, net.layer4)
                self.fc = net.fc

            def forward(self, x):
                features = self.body(x)
                probabilities = torch.softmax(self.fc(features.mean(dim=(2, 3))), dim=1)
                if not with_cam:
                    return probabilities
                cam = torch.einsum("nkhw,ck->nchw", features, self.fc.weight)
                return probabilities, cam

        return Exported().eval()


def _entry(onnx_path: Path, with_cam: bool):
    from medviewer.inference import registry

    card = registry.ModelCard(
        name=onnx_path.stem, version="1", classes=["NORMAL", "PNEUMONIA"],
        input=registry.InputSpec(channels=1, height=SIZE, width=SIZE, name="image"),
        sha256=registry.file_sha256(onnx_path),
        preprocessing=registry.Preprocessing(source="display", resize="stretch"),
        outputs=registry.OutputSpec("probabilities", "cam" if with_cam else None, "none"),
        operating_points={"PNEUMONIA": registry.OperatingPoint(0.5, "fixed for the benchmark")})
    card.save(registry.card_path_for(onnx_path))
    return registry.ModelEntry(card, onnx_path, registry.card_path_for(onnx_path), "user")


# ---------------------------------------------------------------- the four measurements


def bench_ort_vs_torch(folder: Path, threads: int) -> list[tuple[str, int, float, float]]:
    import torch

    from medviewer.inference.runtime import create_session

    rows = []
    for name in ("resnet18", "densenet121"):
        net = _one_channel(name)
        onnx_path = _export(net, folder / f"{name}.onnx", ["logits"])
        session, _ = create_session(onnx_path, device="cpu", threads=threads)
        for batch in (1, 16):
            x = torch.rand(batch, 1, SIZE, SIZE)
            feed = {"image": x.numpy()}
            repeats = 15 if batch == 1 else (5 if name == "resnet18" else 3)
            with torch.inference_mode():
                torch_s, ort_s = _paired_medians(lambda: net(x),
                                                 lambda: session.run(None, feed), repeats)
            with torch.inference_mode():
                reference = net(x).numpy()
            np.testing.assert_allclose(session.run(None, feed)[0], reference, atol=1e-3, rtol=1e-3)
            rows.append((name, batch, torch_s, ort_s))
            print(f"  {name:12s} batch {batch:2d}: torch {torch_s * 1000:8.1f} ms, "
                  f"onnxruntime {ort_s * 1000:8.1f} ms, ORT speed-up {torch_s / ort_s:.2f}x",
                  flush=True)
    return rows


def _kermany_files(count: int) -> list[Path]:
    files = sorted((KERMANY_TEST / "NORMAL").glob("*.jpeg")) + sorted(
        (KERMANY_TEST / "PNEUMONIA").glob("*.jpeg"))
    if len(files) < count:
        raise SystemExit(f"need {count} kermany224 test images under {KERMANY_TEST}")
    return files[:count]


def bench_end_to_end(entry, threads: int, batch_size: int = 8) -> tuple[float, float]:
    from medviewer.dicom.reader import open_instance
    from medviewer.inference.predict import predict_paths
    from medviewer.inference.preprocess import prepare_instance
    from medviewer.inference.runtime import get_session

    files = _kermany_files(E2E_IMAGES)
    model = get_session(entry, device="cpu", threads=threads)
    model.warm_up()
    tensors = np.stack([prepare_instance(open_instance(f), entry.card).tensor for f in files])
    session = model.session

    def pure(chunk: slice) -> None:
        part = tensors[chunk]
        for start in range(0, len(part), batch_size):
            session.run(["probabilities"], {"image": part[start:start + batch_size]})

    # Alternate the two over chunks of 100 images, so load from other processes on a shared
    # machine falls on both sides alike.
    pure_s = e2e_s = 0.0
    results = []
    for first in range(0, len(files), 100):
        chunk = slice(first, first + 100)
        started = time.perf_counter()
        pure(chunk)
        pure_s += time.perf_counter() - started
        started = time.perf_counter()
        results += predict_paths(files[chunk], model, batch_size=batch_size, workers=2)
        e2e_s += time.perf_counter() - started
    assert len(results) == len(files) and all(r.ok for r in results)
    return len(files) / pure_s, len(files) / e2e_s


def bench_cam_overhead(plain_entry, cam_entry, threads: int, images: int = 40
                       ) -> tuple[float, float, float]:
    from medviewer.dicom.reader import open_instance
    from medviewer.inference.predict import predict_instance
    from medviewer.inference.runtime import get_session
    from medviewer.inference.saliency import explain_instance

    plain = get_session(plain_entry, device="cpu", threads=threads)
    cam = get_session(cam_entry, device="cpu", threads=threads)
    plain.warm_up()
    cam.warm_up()
    instances = [open_instance(f) for f in _kermany_files(images)]
    for instance in instances:
        instance.display_frame()  # decode outside the timing: both sides read the same pixels

    # Interleave the two so drift from other processes on the machine hits both equally.
    plain_times, cam_times = [], []
    for instance in instances:
        started = time.perf_counter()
        predict_instance(plain, instance, audit=False)
        plain_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        explain_instance(cam, instance, audit=False)
        cam_times.append(time.perf_counter() - started)
    plain_s, cam_s = statistics.median(plain_times), statistics.median(cam_times)

    # A full-size radiograph: the map is put back on a ~2000 x 2000 grid.
    big = PROJECT_ROOT.parent / "shared" / "data" / "dicom" / "wg04" / "REF" / "RG2_UNC"
    big_instance = open_instance(big)
    big_instance.display_frame()
    big_plain, big_cam = _paired_medians(
        lambda: predict_instance(plain, big_instance, audit=False),
        lambda: explain_instance(cam, big_instance, audit=False), 7)
    print(f"  full-size radiograph {big_instance.rows}x{big_instance.columns}: plain "
          f"{big_plain * 1000:.1f} ms, with CAM {big_cam * 1000:.1f} ms "
          f"({big_cam / big_plain:.2f}x)", flush=True)
    return plain_s, cam_s, big_cam / big_plain


def bench_occlusion(entry, threads: int) -> tuple[int, float]:
    from medviewer.dicom.reader import open_instance
    from medviewer.inference.runtime import get_session
    from medviewer.inference.saliency import occlusion_saliency

    model = get_session(entry, device="cpu", threads=threads)
    instance = open_instance(_kermany_files(1)[0])
    result = occlusion_saliency(model, instance, patch=32, stride=16, batch_size=16)
    return result.forward_passes, result.seconds


def main() -> None:
    import torch

    threads = torch.get_num_threads()
    previous_home = os.environ.get("MEDVIEWER_HOME")
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        folder = Path(tmp)
        os.environ["MEDVIEWER_HOME"] = str(folder / "home")  # audit rows go here, not to a user
        try:
            print(f"CPU, {threads} threads for torch and onnxruntime "
                  f"(torch {torch.__version__})", flush=True)
            print("1. onnxruntime vs torch eager (median of repeats)", flush=True)
            rows = bench_ort_vs_torch(folder, threads)

            plain_entry = _entry(_export(_Resnet18Head.build(False), folder / "plain.onnx",
                                         ["probabilities"]), with_cam=False)
            cam_entry = _entry(_export(_Resnet18Head.build(True), folder / "withcam.onnx",
                                       ["probabilities", "cam"]), with_cam=True)

            print(f"2. predict over {E2E_IMAGES} kermany224 JPEGs vs pure session.run", flush=True)
            pure_ips, e2e_ips = bench_end_to_end(plain_entry, threads)
            print(f"  pure session.run {pure_ips:.1f} img/s, predict_paths {e2e_ips:.1f} img/s, "
                  f"ratio {e2e_ips / pure_ips:.2f} (target >= 0.80)", flush=True)

            print("3. CAM saliency vs plain inference, one 224x224 image at a time", flush=True)
            plain_s, cam_s, big_ratio = bench_cam_overhead(plain_entry, cam_entry, threads)
            print(f"  plain {plain_s * 1000:.1f} ms, prediction + CAM map {cam_s * 1000:.1f} ms, "
                  f"ratio {cam_s / plain_s:.2f}x (target <= 1.15x)", flush=True)

            print("4. occlusion sensitivity, resnet18, patch 32 stride 16, batches of 16",
                  flush=True)
            passes, seconds = bench_occlusion(plain_entry, threads)
            print(f"  {passes} forward passes in {seconds:.2f} s per image "
                  f"({seconds / passes * 1000:.1f} ms per pass)", flush=True)

            print("summary:")
            for name, batch, torch_s, ort_s in rows:
                verdict = "ok" if torch_s / ort_s >= 1.5 else "BELOW TARGET"
                print(f"  ORT vs torch {name} batch {batch}: {torch_s / ort_s:.2f}x "
                      f"(target >= 1.5x) {verdict}")
            print(f"  end-to-end / pure: {e2e_ips / pure_ips:.2f} (target >= 0.80) "
                  f"{'ok' if e2e_ips / pure_ips >= 0.8 else 'BELOW TARGET'}")
            print(f"  CAM / plain: {cam_s / plain_s:.2f}x (target <= 1.15x) "
                  f"{'ok' if cam_s / plain_s <= 1.15 else 'ABOVE TARGET'}; "
                  f"full-size radiograph {big_ratio:.2f}x")
            print(f"  occlusion: {passes} passes, {seconds:.2f} s per image")
        finally:
            from medviewer.inference.runtime import clear_session_cache

            clear_session_cache()
            if previous_home is None:
                os.environ.pop("MEDVIEWER_HOME", None)
            else:
                os.environ["MEDVIEWER_HOME"] = previous_home


if __name__ == "__main__":
    main()
