"""`medviewer train`, `medviewer runs` and `medviewer export`: local retraining, the runs
that can be exported, and ONNX export.

torch is imported inside the handlers only. `medviewer train` also runs unchanged under
``torchrun --nproc_per_node N`` (DistributedDataParallel; only rank 0 prints).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from medviewer.jobs import EventConsumer, Progress, run_to_end
# Torch-free dataclasses: naming them here costs no start-up time.
from medviewer.training.events import (BatchProgress, CheckpointSaved, EarlyStopped, EpochEnd,
                                       RunStarted, TestEvaluated)


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train", help="train a classifier on labelled images",
        description="Train a classifier from a folder per class, a CSV of path,label or "
                    "a label set (labelset:NAME); prints one line per epoch.")
    train.add_argument("--data", help="DIR (a sub-folder per class), FILE.csv or labelset:NAME")
    train.add_argument("--test-data", help="a separate test set (same classes); otherwise a "
                                           "test split is taken from --data")
    train.add_argument("--arch", default="smallcnn",
                       help="smallcnn, resnet14 (resnet18 without layer4), resnet18/34/50, "
                            "densenet121, efficientnet_b0, mobilenet_v3_small/large "
                            "(default smallcnn)")
    train.add_argument("--epochs", type=int,
                       help="epochs to train (default 20; with --resume: raise the total)")
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (AdamW)")
    train.add_argument("--input-size", type=int, default=128, help="square input size in px")
    train.add_argument("--out", help="run folder (created)")
    train.add_argument("--resume", help="continue from a checkpoint (its run folder is used)")
    train.add_argument("--init", dest="init_checkpoint",
                       help="fine-tune from one of our checkpoints")
    train.add_argument("--device", default="auto", help="auto, cpu or cuda")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--split-seed", type=int,
                       help="seed of the split alone (default --seed): keep one split "
                            "across runs that differ in --seed")
    train.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                       help="validate and export an exponential moving average of the "
                            "weights, e.g. 0.995 (default off)")
    train.add_argument("--val-fraction", type=float, default=0.15)
    train.add_argument("--test-fraction", type=float, default=0.15)
    train.add_argument("--patience", type=int, default=6,
                       help="epochs without a better validation AUROC before stopping")
    train.add_argument("--schedule", choices=("onecycle", "cosine"), default="onecycle")
    train.add_argument("--balance", choices=("weights", "sampler", "none"), default="weights")
    train.add_argument("--operating-point", default="youden",
                       help="youden, sensitivity:0.95 or specificity:0.9 (chosen on "
                            "validation)")
    train.add_argument("--threads", type=int, help="CPU threads for torch")
    train.add_argument("--no-augment", action="store_true")
    train.add_argument("--json", action="store_true", help="print JSON lines")
    train.set_defaults(handler=run_train)

    export = subparsers.add_parser(
        "export", help="export a training run to ONNX with its model card",
        description="Export a run's best checkpoint to ONNX (probabilities + CAM), check "
                    "torch/onnxruntime parity, evaluate on the test split and write the card.")
    export.add_argument("run_dir", nargs="+",
                        help="a run folder from `medviewer train` (or a .pt file); several "
                             "runs on one split (--split-seed) export as one ensemble")
    export.add_argument("--name", required=True)
    export.add_argument("--version", required=True)
    export.add_argument("--out-dir", help="where NAME-VERSION/ is written (default RUN/export)")
    export.add_argument("--description", default="")
    export.add_argument("--weights", choices=["float32", "float16", "int8"], default="float32",
                        help="how the file stores the weights: float16 halves it (outputs "
                             "within 5e-3), int8 quarters it (within 3e-2); the parity "
                             "check reports the actual difference")
    export.add_argument("--operating-point", metavar="METHOD",
                        help="how finding thresholds are chosen on the calibrated validation "
                             "scores: youden, sensitivity:X or specificity:X (default: the "
                             "run's)")
    export.add_argument("--register", action="store_true",
                        help="also install it into the user models folder, with the "
                             "run's checkpoint beside it for fine-tuning; refused (exit 1, "
                             "files still written) when the export warns")
    export.add_argument("--register-anyway", action="store_true",
                        help="register even when the export warns (test AUROC interval "
                             "includes 0.5, test far below validation, or no test figures)")
    export.add_argument("--json", action="store_true")
    export.set_defaults(handler=run_export)

    runs = subparsers.add_parser(
        "runs", help="list the finished training runs that can be exported",
        description="List the runs in MedViewer's runs folder (where the training wizard "
                    "trains) that have a best checkpoint, newest first, with their date, "
                    "data, architecture and best validation AUROC. Export one with "
                    "`medviewer export RUN_DIR`.")
    runs.add_argument("--folder", help="list this folder of runs instead")
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(handler=run_runs)


def _emit_json(event_type: str, payload: dict) -> None:
    sys.stdout.write(json.dumps({"event": event_type, **payload}, default=float) + "\n")
    sys.stdout.flush()


def _format_epoch(metrics: dict, epochs: int, class_names: list[str]) -> str:
    val = metrics["val"]
    points = val.get("operating_points", {})
    positive = class_names[-1] if len(class_names) == 2 else None
    text = (f"epoch {metrics['epoch']}/{epochs}  train loss {metrics['train_loss']:.4f} "
            f"acc {metrics['train_accuracy']:.3f}  val loss {metrics['val_loss']:.4f} "
            f"acc {metrics['val_accuracy']:.3f} AUROC {metrics['val_auroc']:.4f}")
    if positive and positive in points:
        point = points[positive]
        text += (f"  sens {point['sensitivity']:.3f} spec {point['specificity']:.3f} "
                 f"@{point['threshold']:.3f}")
    text += f"  {metrics['train_images_per_second']:.0f} img/s {metrics['epoch_seconds']:.0f}s"
    if metrics["best_epoch"] == metrics["epoch"]:
        text += "  *best"
    return text


def _require_torch() -> None:
    """The Viewer edition has no torch: say so in one sentence instead of a traceback."""
    import importlib.util

    from medviewer.errors import UserError

    if importlib.util.find_spec("torch") is None:
        raise UserError("Training needs the MedViewer Studio edition: PyTorch is not "
                        "installed here (from source: pip install 'medviewer[studio]').")


class TrainPrinter(EventConsumer):
    """What `medviewer train` prints for each trainer event: a line per epoch, or with
    ``--json`` a JSON object per line."""

    # One line per epoch is the CLI's rhythm: batches and checkpoint writes are not shown.
    ignored_events = (BatchProgress, CheckpointSaved)

    def __init__(self, as_json: bool, model_name: str) -> None:
        self.as_json = as_json
        self.model_name = model_name
        self.class_names: list[str] = []
        self.epochs = 0
        self._last_progress = -1

    def on_progress(self, event: Progress) -> None:
        if self.as_json or not event.total:
            return
        percent = int(100 * event.done / event.total)
        if percent // 25 != self._last_progress // 25 or event.done == event.total:
            print(f"  {event.message} {event.done}/{event.total}", file=sys.stderr, flush=True)
        self._last_progress = percent

    def on_run_started(self, event: RunStarted) -> None:
        self.class_names, self.epochs = event.class_names, event.epochs
        if self.as_json:
            _emit_json("started", event.__dict__)
            return
        counts = ", ".join(f"{k} {v}" for k, v in event.counts.items())
        print(f"training {self.model_name} on {event.device} (x{event.world_size}): "
              f"{counts} images, split by {event.split_by}; classes "
              f"{', '.join(self.class_names)}; {event.parameters:,} parameters", flush=True)

    def on_epoch_end(self, event: EpochEnd) -> None:
        if self.as_json:
            _emit_json("epoch", event.metrics)
        else:
            print(_format_epoch(event.metrics, self.epochs, self.class_names), flush=True)

    def on_early_stopped(self, event: EarlyStopped) -> None:
        if self.as_json:
            _emit_json("early_stopped", event.__dict__)
        else:
            print(f"early stop after epoch {event.epoch} (best epoch {event.best_epoch})",
                  flush=True)

    def on_test_evaluated(self, event: TestEvaluated) -> None:
        if self.as_json:
            _emit_json("test", event.metrics)
            return
        auroc = ", ".join(f"{k} {v:.4f}" for k, v in event.metrics["auroc"].items())
        print(f"test: accuracy {event.metrics['accuracy']:.4f}, AUROC {auroc}", flush=True)


def _check_checkpoint(path: str | os.PathLike) -> None:
    """Refuse a stray file before torch is even imported (training/checkpoint_file.py)."""
    from medviewer.training.checkpoint_file import check_checkpoint_file

    check_checkpoint_file(path)


def _check_run(run: str) -> None:
    """An export's run: a checkpoint file, or a run folder whose best checkpoint is checked."""
    from pathlib import Path

    best = Path(run) / "checkpoints" / "best.pt"
    if os.path.isdir(run):
        if os.path.lexists(best):
            _check_checkpoint(best)
    elif os.path.lexists(run):
        _check_checkpoint(run)


def run_train(args: argparse.Namespace) -> int:
    _require_torch()
    for checkpoint in (args.resume, args.init_checkpoint):
        if checkpoint:
            _check_checkpoint(checkpoint)
    from medviewer.errors import UserError
    from medviewer.jobs import CancelFlag
    from medviewer.training import trainer

    if not args.resume and (not args.data or not args.out):
        raise UserError("Training needs --data and --out (or --resume CHECKPOINT).")
    main_rank = int(os.environ.get("RANK", "0")) == 0
    config = None
    run_dir = args.out
    if args.resume:
        from pathlib import Path

        run_dir = args.out or str(Path(args.resume).resolve().parent.parent)
    else:
        augment = None
        if args.no_augment:
            from medviewer.training.data import AugmentConfig

            augment = {**AugmentConfig().__dict__, "enabled": False}
        config = trainer.TrainConfig(
            data=args.data, test_data=args.test_data, arch=args.arch,
            epochs=args.epochs or 20,
            batch_size=args.batch_size, lr=args.lr, input_size=args.input_size,
            device=args.device, seed=args.seed, split_seed=args.split_seed,
            ema_decay=args.ema, val_fraction=args.val_fraction,
            test_fraction=args.test_fraction, patience=args.patience, schedule=args.schedule,
            balance=args.balance, operating_point=args.operating_point,
            num_threads=args.threads, init_checkpoint=args.init_checkpoint)
        if augment is not None:
            config.augment = augment
    cancel = CancelFlag()
    job = trainer.train(config, run_dir, cancel, resume=args.resume,
                        epochs=args.epochs if args.resume else None)
    printer = TrainPrinter(args.json, args.arch if config else "resumed run")
    try:
        # Only rank 0 prints under torchrun; the others still drive their share of the run.
        result = run_to_end(job, printer.dispatch if main_rank else None)
    except KeyboardInterrupt:
        cancel.cancel()
        job.close()
        raise
    if main_rank:
        if args.json:
            # "cancelled" stays in the line (as in result.json) for scripts that read it:
            # a run that returns a result was not cancelled (Ctrl+C ends the command).
            _emit_json("result", {**result.to_dict(), "cancelled": False})
        else:
            print(f"best epoch {result.best_epoch} (val AUROC "
                  f"{result.best_val_auroc if result.best_val_auroc is None else round(result.best_val_auroc, 4)}); "
                  f"run folder {result.run_dir}", flush=True)
    return 0


def run_export(args: argparse.Namespace) -> int:
    _require_torch()
    for run in args.run_dir:
        _check_run(run)
    from medviewer.app.training_export import export_model

    from medviewer.errors import UserError
    from medviewer.training.metrics import check_operating_point_method

    if args.operating_point:
        try:
            check_operating_point_method(args.operating_point)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    # The wizard's export workflow, without thresholds chosen by hand: the same run gives
    # the same card and registration from both.
    runs = args.run_dir[0] if len(args.run_dir) == 1 else args.run_dir
    outcome = run_to_end(export_model(runs, args.name, args.version,
                                      description=args.description,
                                      register=args.register or args.register_anyway,
                                      register_despite_warnings=args.register_anyway,
                                      out_dir=args.out_dir, weights=args.weights,
                                      operating_point=args.operating_point))
    result = outcome.result
    if args.json:
        from medviewer.commands.output import print_json

        print_json(result.to_dict())
    else:
        _print_export(result)
    if outcome.registration_withheld:
        raise UserError(f"{args.name} {args.version} was exported to {result.onnx_path} but "
                        f"not registered, because the export warns about it (the warnings are "
                        f"in its output); pass --register-anyway to register it all the same.")
    return 0


def _print_export(result: Any) -> None:
    print(f"exported {result.onnx_path} ({result.size_bytes / 1e6:.1f} MB)")
    print(f"parity on {result.parity_images} validation images: max |diff| "
          f"{result.parity_max_abs_probabilities:.2e} (probabilities), "
          f"{result.parity_max_abs_cam:.2e} (CAM)")
    metrics: dict[str, Any] = result.test_metrics
    if metrics:
        auroc = ", ".join(f"{k} {v:.4f}" for k, v in metrics["auroc"].items())
        print(f"test ({metrics['n']} images): accuracy {metrics['accuracy']:.4f}, AUROC {auroc}")
        for name, point in metrics["operating_points"].items():
            print(f"  {name}: threshold {point['threshold']:.4f} sensitivity "
                  f"{point['sensitivity']:.4f} specificity {point['specificity']:.4f}")
    print(f"model card {result.card_path}")
    for line in result.warnings:
        print(f"WARNING {line}")
    if result.registered_path:
        print(f"registered as {result.registered_path}")


def run_runs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from medviewer.app.training import list_finished_runs, runs_dir
    from medviewer.errors import UserError

    folder = Path(args.folder) if args.folder else runs_dir()
    if not folder.is_dir():
        raise UserError(f"The runs folder {folder} does not exist.")
    runs = list_finished_runs(folder)
    if args.json:
        from medviewer.commands.output import print_json

        print_json([run.to_dict() for run in runs])
        return 0
    if not runs:
        print(f"no run with a best checkpoint in {folder}")
        return 0
    print(f"{len(runs)} runs in {folder}, newest first:")
    for run in runs:
        auroc = "-" if run.best_val_auroc is None else f"{run.best_val_auroc:.3f}"
        print(f"{run.started}  {run.arch:<12s} val AUROC {auroc:>5s}  {run.ended:<10s} "
              f"data {run.data or '?'}\n    {run.run_dir}")
    return 0
