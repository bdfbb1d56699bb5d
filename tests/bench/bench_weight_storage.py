"""Stored weights: float16 and int8 files against float32 of the same network (CPU).

The exporter can store weights as float16 (a Cast per weight) or int8 per output channel (a
DequantizeLinear per weight); the arithmetic stays float32. What that costs: the file size,
the session's load time and the latency of one 128 px image, each against the float32 file
of the same two-member resnet14 ensemble (random weights; the shape of the shipped demo
model), through the app's own ``create_session`` on the CPU provider.

Run alone with ``.venv/bin/python -m tests.bench weight_storage``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

SIZE = 128
REPEATS = 40


def _median_latency(session, image: np.ndarray) -> float:
    for _ in range(3):
        session.run(None, {"image": image})
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        session.run(None, {"image": image})
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    import shutil

    import torch

    from medviewer.inference.runtime import create_session
    from medviewer.training import export
    from medviewer.training.models import Ensemble, build_model

    torch.manual_seed(0)
    model = Ensemble([build_model("resnet14", 2), build_model("resnet14", 2)]).eval()
    image = np.random.default_rng(0).random((1, 1, SIZE, SIZE), dtype=np.float32)
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder) / "exported.onnx"
        export.export_onnx(model, SIZE, base)
        for storage, (_, store, _) in export.WEIGHT_STORAGE.items():
            path = Path(folder) / f"{storage}.onnx"
            shutil.copyfile(base, path)
            if store is not None:
                store(path)
            started = time.perf_counter()
            session, _ = create_session(path, device="cpu")
            load = time.perf_counter() - started
            rows[storage] = (path.stat().st_size, load, _median_latency(session, image))
    size0, load0, latency0 = rows["float32"]
    print(f"two-member resnet14 ensemble, {SIZE} px, batch 1, CPU provider, median of "
          f"{REPEATS}")
    print(f"{'weights':<8} {'file MB':>8} {'ratio':>6} {'load ms':>8} {'ratio':>6} "
          f"{'latency ms':>10} {'ratio':>6}")
    for storage, (size, load, latency) in rows.items():
        print(f"{storage:<8} {size / 1e6:8.2f} {size / size0:6.2f} {load * 1e3:8.0f} "
              f"{load / load0:6.2f} {latency * 1e3:10.1f} {latency / latency0:6.2f}")


if __name__ == "__main__":
    main()
