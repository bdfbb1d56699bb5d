"""The exact recipes of the shipped demo models (models/pneumonia-demo-*/).

Trains from scratch on ../shared/data/xray/kermany224/train (validation split by patient
taken from it), evaluates on the official test split, exports ONNX + model card to models/.
``--recipe`` picks the version (see RECIPES).

Recipe 1.0 was made in two steps, because the shared 2-core machine was too busy for the
planned 16 epochs (8-10 min per epoch under load): 6 epochs of a 16-epoch one-cycle
schedule, then resumed with the total cut to 12 (the schedule continues from the same step
on the shorter curve). Per-epoch seeds make the resume exact, so this reproduces it:

    RUN=/tmp/medviewer-demo-run
    nice -n 10 .venv/bin/python tools/train_demo_model.py --recipe 1.0 --run-dir $RUN \
        --epochs 16 --stop-after 6 --no-export
    nice -n 10 .venv/bin/python tools/train_demo_model.py --recipe 1.0 --run-dir $RUN \
        --epochs 12 --resume $RUN/checkpoints/last.pt

Recipe 1.1 runs in one go: ``tools/train_demo_model.py --recipe 1.1``. Both were trained
before channels-last convolutions (TrainConfig.channels_last), so today's arithmetic differs
from theirs in the last bits; pass ``channels_last=False`` in the config to match them.

Recipe 1.2 is an ensemble of three seeds on one split (fixed before any was trained):

    for SEED in 1 2 3; do
        .venv/bin/python tools/train_demo_model.py --recipe 1.2 --seed $SEED --split-seed 0 \
            --run-dir /tmp/demo-1.2-seed$SEED --no-export
    done
    .venv/bin/python tools/train_demo_model.py --recipe 1.2 --export-only \
        --ensemble /tmp/demo-1.2-seed1 /tmp/demo-1.2-seed2 /tmp/demo-1.2-seed3

Recipe 1.3 is an ensemble of two resnet14 seeds, trained side by side on one thread each:

    for SEED in 1 2; do
        .venv/bin/python tools/train_demo_model.py --recipe 1.3 --seed $SEED --threads 1 \
            --run-dir /tmp/demo-1.3-seed$SEED --no-export --watch-test &
    done; wait
    .venv/bin/python tools/train_demo_model.py --recipe 1.3 --export-only \
        --ensemble /tmp/demo-1.3-seed1 /tmp/demo-1.3-seed2

Recipe 1.5 adds a third seed to 1.3's two:

    .venv/bin/python tools/train_demo_model.py --recipe 1.5 --seed 3 \
        --run-dir /tmp/demo-1.5-seed3 --no-export --watch-test
    .venv/bin/python tools/train_demo_model.py --recipe 1.5 --export-only \
        --ensemble /tmp/demo-1.3-seed1 /tmp/demo-1.3-seed2 /tmp/demo-1.5-seed3

``--watch-test`` also scores every epoch's weights on the test split and logs it, for the
record only: the best epoch is chosen on validation AUROC, never on test figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from medviewer.jobs import CancelFlag, JobCancelled, Progress, run_to_end  # noqa: E402
from medviewer.training import data, export, metrics, trainer  # noqa: E402

KERMANY = ROOT.parent / "shared" / "data" / "xray" / "kermany224"


# The augmentation of every recipe since 1.1.
XRAY_AUGMENT = {"rotation_deg": 10.0, "scale": 0.15, "translate": 0.08, "brightness": 0.15,
                "contrast": 0.3, "gamma": 0.3}

# One entry per version (shipped, or a trial that says so); --recipe defaults to the shipped.
RECIPES = {
    "1.0": {"size": 128, "epochs": 16, "weight_decay": 5e-4,
            "augment": {"rotation_deg": 8.0, "scale": 0.12, "translate": 0.07,
                        "brightness": 0.12, "contrast": 0.2}},
    "1.1": {"size": 160, "epochs": 12, "weight_decay": 5e-4,
            "augment": XRAY_AUGMENT},
    # 1.1 plus an average of the weights, shipped as an ensemble of three seeds (1, 2, 3) on
    # one split: 1.1's test AUROC swung 0.960-0.970 between late epochs and seeds while
    # validation AUROC sat at 0.999, so no single run's figure could be trusted. (A trial at
    # the data's native 224 px, seed 0, reached only 0.951-0.955 and was not used.)
    "1.2": {"size": 160, "epochs": 12, "weight_decay": 5e-4, "ema_decay": 0.995,
            "weights": "float16",
            "augment": XRAY_AUGMENT},
    # 1.2's settings on resnet14 (resnet18 without layer4) at 128 px for 10 epochs, seeds 1
    # and 2 on split 0, exported as one ensemble. Fixed before either seed was trained, after
    # a resnet18 trial with exactly these settings reached test AUROC 0.968 at the epoch
    # validation picked, against smallcnn's 0.949-0.963: depth helped, but resnet18's layer4
    # makes a 22 MB file. resnet14 keeps the depth and drops the 8 M weights of layer4.
    # Its weights are stored in 8 bits per output channel (two members' float16 would be
    # 11 MB); the card's figures are the 8-bit file's own.
    "1.3": {"arch": "resnet14", "size": 128, "epochs": 10, "weight_decay": 5e-4,
            "ema_decay": 0.995, "weights": "int8",
            "augment": XRAY_AUGMENT},
    # 1.3 at 160 px, one run (seed 1, two threads), single model with int8 weights (2.8 MB).
    # Fixed before training, with the rule that it replaces 1.3 only if its test AUROC
    # reaches 0.97; otherwise it is recorded as a trial. (Choosing by a test threshold is
    # still selection on test: a figure that passes it is optimistic.) Result: 0.959 at the
    # epoch validation picked, so 1.3 stays; the larger input did not help.
    "1.4": {"arch": "resnet14", "size": 160, "epochs": 10, "weight_decay": 5e-4,
            "ema_decay": 0.995, "weights": "int8",
            "augment": XRAY_AUGMENT},
    # 1.3 with a third member: the same recipe with seed 3 (two threads), exported with 1.3's
    # seeds 1 and 2 as one ensemble of three (8.4 MB). Fixed before seed 3 was trained, on the
    # grounds that the members' test AUROC swung 0.959-0.969 between late epochs while their
    # average was steadier, so more members should lower that variance. It replaces 1.3 only
    # if its test AUROC reaches 0.97 (still selection on test: a figure that passes is
    # optimistic); otherwise it is recorded as a trial. Result: seed 3 alone scored 0.950
    # (seeds 1 and 2: 0.964, 0.966) and the ensemble of three 0.964 [0.947-0.980], so 1.3
    # stays; the members differ by seed more than an ensemble of three averages away.
    "1.5": {"arch": "resnet14", "size": 128, "epochs": 10, "weight_decay": 5e-4,
            "ema_decay": 0.995, "weights": "int8",
            "augment": XRAY_AUGMENT},
}


def recipe(args: argparse.Namespace) -> trainer.TrainConfig:
    chosen = RECIPES[args.recipe]
    return trainer.TrainConfig(
        data=str(KERMANY / "train"), test_data=str(KERMANY / "test"),
        arch=args.arch or chosen.get("arch", "smallcnn"),
        epochs=args.epochs or chosen["epochs"], batch_size=64, lr=args.lr,
        weight_decay=chosen["weight_decay"], input_size=args.size or chosen["size"], seed=args.seed,
        split_seed=args.split_seed, device="auto", val_fraction=0.2, schedule="onecycle",
        warmup_fraction=0.15, balance="weights", label_smoothing=0.05, dropout=0.2,
        patience=args.epochs or chosen["epochs"], operating_point="youden",
        augment={**data.AugmentConfig().__dict__, **chosen["augment"]},
        ema_decay=chosen.get("ema_decay", 0.0), num_threads=args.threads)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", help="default: the recipe's (smallcnn before 1.3)")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="1.3")
    parser.add_argument("--epochs", type=int, help="default: the recipe's")
    parser.add_argument("--size", type=int, help="input size in px (default: the recipe's); "
                                                 "for trials, e.g. another --arch")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split-seed", type=int, default=0,
                        help="every member of an ensemble must share the split")
    parser.add_argument("--ensemble", nargs="+", metavar="RUN_DIR",
                        help="with --export-only: export these runs as one ensemble")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--run-dir", default="/tmp/medviewer-demo-run")
    parser.add_argument("--name", default="pneumonia-demo")
    parser.add_argument("--version", help="default: the recipe's version")
    parser.add_argument("--models-dir", default=str(ROOT / "models"))
    parser.add_argument("--watch-test", action="store_true")
    parser.add_argument("--no-export", action="store_true")
    parser.add_argument("--stop-after", type=int, help="stop cleanly after this epoch")
    parser.add_argument("--resume", help="continue a run from its checkpoints/last.pt; "
                                         "--epochs is then the new total")
    parser.add_argument("--export-only", action="store_true",
                        help="export an already trained --run-dir")
    args = parser.parse_args()
    args.version = args.version or args.recipe
    torch.set_num_threads(args.threads)
    if args.export_only:
        return export_demo(args)
    config = recipe(args)
    if args.resume:
        config = trainer.TrainConfig.from_dict(trainer.load_checkpoint(args.resume)["config"])
        config.epochs = args.epochs
    print(json.dumps(config.to_dict()), flush=True)
    started = time.time()
    test_images = test_labels = None
    cancel = CancelFlag()
    job = trainer.train(None if args.resume else config, args.run_dir, cancel,
                        resume=args.resume,
                        epochs=args.epochs if args.resume else None)
    while True:
        try:
            event = next(job)
        except StopIteration as stop:
            result = stop.value
            break
        except JobCancelled:  # --stop-after: the run folder keeps its checkpoints
            print(f"stopped after {args.stop_after} epochs in "
                  f"{(time.time() - started) / 60:.1f} min", flush=True)
            return 0
        if isinstance(event, trainer.RunStarted):
            print(f"start: {event.counts} by {event.split_by} on {event.device}, "
                  f"{event.parameters:,} parameters", flush=True)
        elif isinstance(event, Progress) and event.done == event.total:
            print(f"  {event.message} {event.done}", flush=True)
        elif isinstance(event, trainer.EpochEnd):
            m = event.metrics
            line = (f"epoch {m['epoch']:2d} lr {m['lr']:.2e} train loss {m['train_loss']:.4f} "
                    f"acc {m['train_accuracy']:.3f} | val loss {m['val_loss']:.4f} "
                    f"acc {m['val_accuracy']:.3f} AUROC {m['val_auroc']:.4f} | "
                    f"{m['train_images_per_second']:.0f} img/s {m['epoch_seconds']:.0f}s")
            print(line, flush=True)
            if args.stop_after and m["epoch"] >= args.stop_after:
                cancel.cancel()  # the trainer stops before the next batch
        elif isinstance(event, trainer.CheckpointSaved) and not event.best and args.watch_test:
            if test_images is None:
                _, splits, _ = data.load_split(Path(args.run_dir) / "split.json")
                test_images = run_to_end(data.preload_images(splits["test"], config.input_size))
                test_labels = np.array([r.label for r in splits["test"]])
            model = trainer.model_from_checkpoint(trainer.load_checkpoint(event.path))
            probs = trainer.predict_probabilities(model, test_images, torch.device("cpu"))
            print(f"    (record only) test AUROC {metrics.auroc(test_labels == 1, probs[:, 1]):.4f}"
                  f" acc {(probs.argmax(1) == test_labels).mean():.3f}", flush=True)
        elif isinstance(event, trainer.TestEvaluated):
            print(f"test (best epoch {result_epoch(args.run_dir)}): "
                  f"{json.dumps({k: event.metrics[k] for k in ('accuracy', 'auroc')})}",
                  flush=True)
    print(f"training done in {(time.time() - started) / 60:.1f} min; best epoch "
          f"{result.best_epoch}, val AUROC {result.best_val_auroc:.4f}", flush=True)
    if args.no_export:
        return 0
    return export_demo(args)


# How the card's description names an architecture that is not a torchvision one.
ARCHITECTURE_WORDS = {"resnet14": "resnet14 (ResNet-18 without its last stage)"}


def export_demo(args: argparse.Namespace) -> int:
    runs = args.ensemble or [args.run_dir]
    bests = [trainer.load_checkpoint(Path(run) / "checkpoints" / "best.pt") for run in runs]
    config = trainer.TrainConfig.from_dict(bests[0]["config"])
    arch = ARCHITECTURE_WORDS.get(config.arch, config.arch)
    if len(runs) == 1:
        what = (f"{arch} at {config.input_size} px, trained from scratch with "
                f"tools/train_demo_model.py (best epoch {bests[0]['best_epoch']} of "
                f"{config.epochs} by validation AUROC).")
    else:
        seeds = ", ".join(str(b["config"]["seed"]) for b in bests)
        what = (f"an ensemble of {len(runs)} {arch} at {config.input_size} px (seeds "
                f"{seeds}, one split), each trained from scratch with "
                f"tools/train_demo_model.py and kept at its best epoch by validation AUROC.")
    exported = run_to_end(export.export_run(
        runs[0] if len(runs) == 1 else runs, args.name, args.version,
        out_dir=args.models_dir, weights=RECIPES[args.recipe].get("weights", "float32"),
        description=f"Pneumonia vs normal on pediatric chest X-rays: {what}"))
    print(json.dumps(exported.to_dict(), indent=1, default=float), flush=True)
    return 0


def result_epoch(run_dir: str) -> int | None:
    payload = trainer.load_checkpoint(Path(run_dir) / "checkpoints" / "best.pt")
    return payload.get("best_epoch")


if __name__ == "__main__":
    raise SystemExit(main())
