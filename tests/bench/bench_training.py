"""Training throughput: our trainer generator vs a bare PyTorch loop, same run.

Same model (smallcnn), same preprocessed Kermany images (128 px, in RAM), same batch size,
same augmentation, loss and optimiser; the trainer's figure is its training time per epoch
(validation excluded), the bare loop times the same number of batches. Target ratio >= 0.9.
The bare loop runs in the trainer's memory format (channels-last), so the ratio is the
trainer's overhead; a second bare loop in PyTorch's default layout shows what that format
gains.
"""

from __future__ import annotations

import csv
import math
import os
import random
import tempfile
import time
from pathlib import Path

SIZE = 128
BATCH = 64
TRAIN_IMAGES = 512
EPOCHS = 3  # the first is warm-up
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "xray" / "kermany224"


def _subset_csv(folder: Path) -> Path:
    rng = random.Random(0)
    rows = []
    per_class = TRAIN_IMAGES * 5 // 4 // 2  # 20 % of them become the validation split
    for class_name in ("NORMAL", "PNEUMONIA"):
        files = sorted((SHARED / "train" / class_name).iterdir())
        rows += [(str(p), class_name) for p in rng.sample(files, per_class)]
    path = folder / "bench.csv"
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([("path", "label"), *rows])
    return path


def _trainer_rate(csv_path: Path, run_dir: Path) -> tuple[float, int]:
    from medviewer.jobs import run_to_end
    from medviewer.training import trainer

    config = trainer.TrainConfig(data=str(csv_path), arch="smallcnn", epochs=EPOCHS,
                                 batch_size=BATCH, input_size=SIZE, val_fraction=0.2,
                                 test_fraction=0.0, device="cpu", patience=EPOCHS)
    rates = []
    run_to_end(trainer.train(config, run_dir),
               lambda e: rates.append(e.metrics["train_images_per_second"])
               if isinstance(e, trainer.EpochEnd) else None)
    return sum(rates[1:]) / len(rates[1:]), len(rates)


def _bare_rate(run_dir: Path, channels_last: bool) -> float:
    import torch
    import torch.nn.functional as F

    from medviewer.jobs import run_to_end
    from medviewer.training import data
    from medviewer.training.models import build_model

    _, splits, _ = data.load_split(run_dir / "split.json")
    images = run_to_end(data.preload_images(splits["train"], SIZE))
    labels = torch.tensor([r.label for r in splits["train"]])
    torch.manual_seed(0)
    model = build_model("smallcnn", 2)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    counts = torch.bincount(labels).float()
    weights = counts.sum() / (2 * counts)
    augment = data.AugmentConfig()
    generator = torch.Generator().manual_seed(0)
    n = images.shape[0]
    batches = math.ceil(n / BATCH)
    rates = []
    for _ in range(EPOCHS):
        model.train()
        order = torch.randperm(n, generator=generator)
        started = time.perf_counter()
        for b in range(batches):
            index = order[b * BATCH:(b + 1) * BATCH]
            x = data.augment_batch(images[index], augment, generator)
            loss = F.cross_entropy(model(x), labels[index], weight=weights,
                                   label_smoothing=0.05)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        rates.append(n / (time.perf_counter() - started))
    return sum(rates[1:]) / len(rates[1:])


def main() -> None:
    import torch

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["MEDVIEWER_HOME"] = str(folder / "home")  # never the real user's cache
        csv_path = _subset_csv(folder)
        run_dir = folder / "run"
        ours, _ = _trainer_rate(csv_path, run_dir)
        bare = _bare_rate(run_dir, channels_last=True)
        bare_nchw = _bare_rate(run_dir, channels_last=False)
        ours_again, _ = _trainer_rate(csv_path, folder / "run2")
    ours = (ours + ours_again) / 2
    print(f"training smallcnn {SIZE} px, batch {BATCH}, {TRAIN_IMAGES} images, "
          f"{torch.get_num_threads()} threads")
    print(f"  bare PyTorch loop, default layout: {bare_nchw:7.1f} images/s")
    print(f"  bare PyTorch loop : {bare:7.1f} images/s (channels-last, as the trainer)")
    print(f"  medviewer trainer : {ours:7.1f} images/s")
    print(f"  ratio trainer/bare: {ours / bare:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
