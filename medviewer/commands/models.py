"""Sub-commands for AI models: ``models list|import``, ``predict`` and ``saliency``.

onnxruntime and numpy-heavy modules are imported inside the handlers so the CLI starts fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from medviewer.errors import UserError

DEVICE_HELP = "where to run: auto (GPU when it works, else CPU), cuda or cpu (default: auto)"


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="list installed AI models or import one",
                                   description="List installed AI models or import one.")
    models.add_argument("--json", action="store_true", help="print JSON")
    models.set_defaults(handler=_list_models)
    actions = models.add_subparsers(dest="models_action", metavar="ACTION")
    listing = actions.add_parser("list", help="show built-in and user models and the providers")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list_models)
    importing = actions.add_parser("import", help="check a model against its card and install it")
    importing.add_argument("model", metavar="MODEL.onnx", help="the ONNX model file")
    importing.add_argument("--card", metavar="CARD.json",
                           help="the model card (default: MODEL.json beside the model)")
    importing.add_argument("--json", action="store_true", help="print JSON")
    importing.set_defaults(handler=_import_model)

    predict = subparsers.add_parser(
        "predict", help="run an AI model on images, a study or a folder",
        description="Run an AI model on images (DICOM, PNG, JPEG), studies or folders.")
    predict.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    _add_model_options(predict)
    predict.add_argument("--batch-size", type=int, default=8, help="images per batch (default 8)")
    output = predict.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON")
    output.add_argument("--csv", metavar="OUT.csv", help="also write one CSV row per image")
    predict.set_defaults(handler=_predict)

    saliency = subparsers.add_parser(
        "saliency", help="write an image with the model's saliency map blended on it",
        description="Explain a prediction: CAM (one pass, models with a 'cam' output) or "
                    "occlusion sensitivity (any model, many passes).")
    saliency.add_argument("path", metavar="FILE", help="a DICOM, PNG or JPEG image")
    _add_model_options(saliency)
    saliency.add_argument("--class", dest="class_name", metavar="C",
                          help="class name or index (default: the top class)")
    saliency.add_argument("--method", choices=("cam", "occlusion"),
                          help="default: cam when the model has it, else occlusion")
    saliency.add_argument("--frame", type=int, default=1, help="frame number, from 1")
    saliency.add_argument("--patch", type=int, default=32, help="occlusion patch size (input px)")
    saliency.add_argument("--stride", type=int, default=16, help="occlusion stride (input px)")
    saliency.add_argument("--opacity", type=float, help="heat-map opacity 0-1 (default: settings)")
    saliency.add_argument("-o", "--output", required=True, metavar="OVERLAY.png",
                          help="where to write the overlay image (PNG)")
    saliency.add_argument("--json", action="store_true", help="print JSON")
    saliency.set_defaults(handler=_saliency)


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="NAME",
                        help="model card name or NAME@VERSION (default: settings' default model, "
                             "else the first built-in model)")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                        help=DEVICE_HELP)


def _resolve(name: str | None):
    from medviewer.inference.registry import resolve_model
    from medviewer.settings import load_settings

    return resolve_model(name, load_settings().default_model)


# ---------------------------------------------------------------- models list / import


def _list_models(args: argparse.Namespace) -> int:
    from medviewer.cli import print_json
    from medviewer.inference import registry, runtime

    entries, problems = registry.scan_models()
    report = runtime.provider_report()
    if args.json:
        print_json({
            "providers": {"available": report.available, "requested": report.requested,
                          "active": report.active, "notice": report.notice},
            "models": [entry.to_dict() for entry in entries],
            "problems": [{"path": str(p.path), "reason": p.reason} for p in problems],
        })
        return 0
    print(f"Providers available: {', '.join(report.available)}")
    print(f"Models would run on: {report.active}")
    if report.notice:
        print(f"Notice: {report.notice}")
    if not entries:
        print("No models installed. Import one with 'medviewer models import MODEL.onnx'.")
    else:
        rows = [("NAME", "VERSION", "SOURCE", "CLASSES", "INPUT", "CAM", "SHA-256")]
        for entry in entries:
            d = entry.to_dict()
            rows.append((d["name"], d["version"], d["source"], ",".join(d["classes"]),
                         d["input"], "yes" if d["cam"] else "no", d["sha256"][:12]))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    for problem in problems:
        print(f"Unusable: {problem.reason}")
    return 0


def _import_model(args: argparse.Namespace) -> int:
    from medviewer.cli import print_json
    from medviewer.inference.registry import import_model

    entry = import_model(args.model, args.card)
    if args.json:
        print_json(entry.to_dict())
    else:
        print(f"Imported model {entry.name} version {entry.version} into {entry.onnx_path.parent}")
    return 0


# ---------------------------------------------------------------- predict


def _format_prediction(prediction: Any) -> str:
    if prediction.error:
        return f"{prediction.path}: error: {prediction.error}"
    parts = []
    for score in sorted(prediction.scores, key=lambda s: -s.probability):
        text = f"{score.name} {score.probability:.3f}"
        if score.threshold is not None:
            verdict = "FLAGGED" if score.flagged else "not flagged"
            text += f" [{verdict} at {score.threshold:.3f}]"
        parts.append(text)
    return f"{prediction.path}: " + ", ".join(parts)


def _write_csv(path: Path, predictions: list, classes: list[str]) -> None:
    from medviewer import csv_safety
    from medviewer.files import check_output_path, os_error_reason

    header = ["path", "input_uid", "top_class"]
    for name in classes:
        header += [f"p_{name}", f"flagged_{name}"]
    header += ["error", "model", "version", "sha256", "provider", "inference_ms"]
    try:
        check_output_path(path)
        # Paths that are not UTF-8 are written escaped: the file stays valid UTF-8.
        with open(path, "w", newline="", encoding="utf-8", errors="backslashreplace") as handle:
            writer = csv_safety.writer(handle)
            writer.writerow(header)
            for p in predictions:
                row: list[Any] = [str(p.path), p.input_uid, p.top.name if p.top else ""]
                scores = {s.name: s for s in p.scores}
                for name in classes:
                    score = scores.get(name)
                    row += [f"{score.probability:.6f}" if score else "",
                            "" if score is None or score.flagged is None else int(score.flagged)]
                row += [p.error or "", p.model_name, p.model_version, p.model_sha256,
                        p.provider, f"{p.inference_ms:.3f}"]
                writer.writerow(row)
    except OSError as exc:
        raise UserError(f"Cannot write {path}: {os_error_reason(exc)}.") from None


def _predict(args: argparse.Namespace) -> int:
    from medviewer.cli import print_json
    from medviewer.files import check_output_file
    from medviewer.inference.predict import predict_paths
    from medviewer.inference.runtime import get_session

    if args.csv:
        check_output_file(args.csv)  # before the work, not after it
    entry = _resolve(args.model)
    session = get_session(entry, args.device)
    predictions = predict_paths(args.paths, session, batch_size=args.batch_size)
    ok = [p for p in predictions if p.ok]
    if args.json:
        print_json({"model": {"name": entry.name, "version": entry.version,
                              "sha256": entry.card.sha256},
                    "provider": session.provider, "notice": session.notice,
                    "predictions": [p.to_dict() for p in predictions]})
    else:
        print(f"Model {entry.name} {entry.version} on {session.provider}")
        if session.notice:
            print(f"Notice: {session.notice}")
        for prediction in predictions:
            print(_format_prediction(prediction))
        flagged = sum(1 for p in ok if p.flagged)
        print(f"{len(predictions)} inputs: {len(ok)} predicted, "
              f"{len(predictions) - len(ok)} errors, {flagged} flagged.")
    if args.csv:
        _write_csv(Path(args.csv), predictions, entry.card.classes)
        if not args.json:
            print(f"Wrote {args.csv}")
    if not predictions:
        raise UserError(f"No images were found in {', '.join(map(str, args.paths))}.")
    if not ok:
        print(f"medviewer: none of the {len(predictions)} inputs could be read.", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------- saliency


def _saliency(args: argparse.Namespace) -> int:
    from PIL import Image

    from medviewer.cli import print_json
    from medviewer.dicom.reader import open_instance
    from medviewer.inference.runtime import get_session
    from medviewer.inference.saliency import blend_overlay, saliency_for
    from medviewer.settings import load_settings

    from medviewer.files import check_output_file, check_output_path, os_error_reason

    check_output_file(args.output)
    entry = _resolve(args.model)
    if args.method == "cam" and not entry.card.has_cam:
        raise UserError(f"Model '{entry.name}' has no class activation map output; "
                        "use --method occlusion.")
    session = get_session(entry, args.device)
    instance = open_instance(args.path)
    frame = args.frame - 1
    prediction, saliency = saliency_for(session, instance, args.method, args.class_name, frame,
                                        patch=args.patch, stride=args.stride)
    opacity = args.opacity if args.opacity is not None else load_settings().overlay_opacity
    overlay = blend_overlay(instance.display_frame(frame), saliency.values, opacity)
    output = Path(args.output)
    try:
        check_output_path(output)
        Image.fromarray(overlay).save(output, format="PNG")
    except OSError as exc:
        raise UserError(f"Cannot write {output}: {os_error_reason(exc)}.") from None
    if args.json:
        print_json({"output": str(output), "provider": session.provider,
                    "notice": session.notice, "saliency": saliency.to_dict(),
                    "prediction": prediction.to_dict() if prediction else None})
    else:
        if session.notice:
            print(f"Notice: {session.notice}")
        passes = f"{saliency.forward_passes} forward pass{'es' if saliency.forward_passes != 1 else ''}"
        print(f"Wrote {output}: {saliency.method} map for {saliency.class_name} "
              f"(p={saliency.probability:.3f}), {passes} in {saliency.seconds:.2f} s "
              f"on {session.provider}")
    return 0
