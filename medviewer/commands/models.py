"""Sub-commands for AI models: ``models list|import``, ``predict``, ``saliency`` and
``evaluate`` (local validation on a site's labelled images).

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
    predict.add_argument("--read-out-of-scope", action="store_true",
                         help="also flag findings on images outside the model's intended use "
                              "(recorded in the audit log)")
    output = predict.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON")
    output.add_argument("--csv", metavar="OUT.csv", help="also write one CSV row per image")
    predict.add_argument("--sr", metavar="OUT_DIR", type=Path,
                         help="also write each DICOM image's read as a DICOM SR into OUT_DIR")
    predict.set_defaults(handler=_predict)

    saliency = subparsers.add_parser(
        "saliency", help="write an image with the model's saliency map blended on it",
        description="Explain a prediction: CAM (one pass, models with a 'cam' output) or "
                    "occlusion sensitivity (any model, many passes).")
    saliency.add_argument("path", metavar="FILE", help="a DICOM, PNG or JPEG image")
    _add_model_options(saliency)
    saliency.add_argument("--class", dest="class_name", metavar="C",
                          help="class name or index (default: the most probable flagged "
                               "finding, else the most probable class)")
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

    evaluate = subparsers.add_parser(
        "evaluate", help="check a model on your own labelled images (local validation)",
        description="Read labelled images with a model and report AUROC, sensitivity, "
                    "specificity, PPV and NPV (95 % intervals), calibration, unusual images "
                    "and unreadable files. The report is kept beside the model's other local "
                    "records; the model card is never changed.")
    evaluate.add_argument("--labels", required=True, metavar="FILE.csv",
                          help="CSV with the columns path,label (paths relative to the CSV)")
    evaluate.add_argument("--map", metavar="SRC=CLASS,...",
                          help="labels in the CSV that name a model class differently")
    evaluate.add_argument("--threshold", action="append", metavar="CLASS=T",
                          help="also report the figures at this threshold (repeatable)")
    _add_model_options(evaluate)
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument("--no-save", action="store_true",
                          help="do not keep the report as a local validation record")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.set_defaults(handler=_evaluate)


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
    from medviewer.commands.output import print_json
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
    from medviewer.commands.output import print_json
    from medviewer.inference.registry import import_model

    entry = import_model(args.model, args.card)
    if args.json:
        print_json(entry.to_dict())
    else:
        print(f"Imported model {entry.name} version {entry.version} into {entry.onnx_path.parent}")
    return 0


# ---------------------------------------------------------------- predict


def _format_prediction(prediction: Any) -> str:
    from medviewer.inference.decision import at_or_above

    if prediction.error:
        return f"{prediction.path}: error: {prediction.error}"
    if prediction.decision and prediction.decision.withheld:
        answer = "not read: outside intended use"
    elif prediction.flagged:
        answer = "FLAGGED " + ", ".join(prediction.flagged)
    else:
        answer = prediction.offered[0] if prediction.offered else "nothing flagged"
    parts = []
    for score in prediction.scores:
        text = f"{score.name} {score.probability:.3f}"
        if score.threshold is not None:  # the comparison itself, also when not read
            above = at_or_above(score.probability, score.threshold)
            text += f" ({'>=' if above else '<'} {score.threshold:.3f})"
        parts.append(text)
    line = f"{prediction.path}: {answer} [{', '.join(parts)}]"
    if prediction.ood:
        line += f"; unusual image for this model (score {prediction.ood_score:.1f})"
    for reason in prediction.scope_reasons:
        line += f"\n    {reason}"
    if prediction.read_out_of_scope:
        line += "\n    Read anyway (--read-out-of-scope)."
    return line


def _write_csv(path: Path, predictions: list, classes: list[str]) -> None:
    from medviewer import csv_safety
    from medviewer.files import check_output_path, os_error_reason

    header = ["path", "input_uid", "decision"]
    for name in classes:
        header += [f"p_{name}", f"threshold_{name}", f"flagged_{name}"]
    header += ["in_scope", "scope_reasons", "read_out_of_scope", "ood_score", "ood",
               "operating_points_source", "error", "model", "version", "sha256", "provider",
               "inference_ms"]

    def flag(value: bool | None) -> Any:
        return "" if value is None else int(value)

    try:
        check_output_path(path)
        # Paths that are not UTF-8 are written escaped: the file stays valid UTF-8.
        with open(path, "w", newline="", encoding="utf-8", errors="backslashreplace") as handle:
            writer = csv_safety.writer(handle)
            writer.writerow(header)
            for p in predictions:
                row: list[Any] = [str(p.path), p.input_uid, ";".join(p.offered)]
                scores = {s.name: s for s in p.scores}
                for name in classes:
                    score = scores.get(name)
                    row += [f"{score.probability:.6f}" if score else "",
                            "" if score is None or score.threshold is None
                            else f"{score.threshold:.6f}",
                            "" if score is None else int(score.flagged)]
                row += [flag(p.in_scope) if p.ok else "", " ".join(p.scope_reasons),
                        int(p.read_out_of_scope),
                        "" if p.ood_score is None else f"{p.ood_score:.4f}", flag(p.ood),
                        p.operating_points_source if p.ok else "",
                        p.error or "", p.model_name, p.model_version, p.model_sha256,
                        p.provider, f"{p.inference_ms:.3f}"]
                writer.writerow(row)
    except OSError as exc:
        raise UserError(f"Cannot write {path}: {os_error_reason(exc)}.") from None


def _predict(args: argparse.Namespace) -> int:
    from medviewer.commands.output import print_json
    from medviewer.files import check_output_file
    from medviewer.inference.predict import predict_paths
    from medviewer.inference.runtime import get_session

    if args.csv:
        check_output_file(args.csv)  # before the work, not after it
    entry = _resolve(args.model)
    session = get_session(entry, args.device)
    predictions = predict_paths(args.paths, session, batch_size=args.batch_size,
                                read_out_of_scope=args.read_out_of_scope)
    ok = [p for p in predictions if p.ok]
    card = entry.card
    checks = {"calibrated": card.calibration is not None,
              "ood_check": ("available" if card.ood is not None else
                            "not available: this model's card has no out-of-distribution "
                            "statistics"),
              "intended_scope": card.intended_scope.to_dict() if card.intended_scope else None}
    if args.json:
        print_json({"model": {"name": entry.name, "version": entry.version,
                              "sha256": entry.card.sha256, **checks},
                    "provider": session.provider, "notice": session.notice,
                    "predictions": [p.to_dict() for p in predictions]})
    else:
        print(f"Model {entry.name} {entry.version} on {session.provider}")
        if session.notice:
            print(f"Notice: {session.notice}")
        if card.ood is None:
            print("No out-of-distribution check is available for this model.")
        for prediction in predictions:
            print(_format_prediction(prediction))
        flagged = sum(1 for p in ok if p.flagged)
        outside = sum(1 for p in ok if p.in_scope is False)
        unusual = sum(1 for p in ok if p.ood)
        print(f"{len(predictions)} inputs: {len(ok)} predicted, "
              f"{len(predictions) - len(ok)} errors, {flagged} flagged, {outside} outside "
              f"intended use, {unusual} unusual.")
    if args.csv:
        _write_csv(Path(args.csv), predictions, entry.card.classes)
        if not args.json:
            print(f"Wrote {args.csv}")
    if args.sr:
        _write_sr(args, predictions)
    if not predictions:
        raise UserError(f"No images were found in {', '.join(map(str, args.paths))}.")
    if not ok:
        print(f"medviewer: none of the {len(predictions)} inputs could be read.", file=sys.stderr)
        return 1
    return 0


def _write_sr(args: argparse.Namespace, predictions: list) -> None:
    from medviewer.app.dicom_results import write_ai_reports

    written = write_ai_reports(predictions, args.sr)
    if not args.json:  # stdout stays one JSON document with --json
        print(f"Wrote {len(written.paths)} DICOM SR reports to {args.sr}"
              f"{f' ({len(written.skipped)} inputs without one)' if written.skipped else ''}.")


# ---------------------------------------------------------------- saliency


def _saliency(args: argparse.Namespace) -> int:
    from PIL import Image

    from medviewer.commands.output import print_json
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


# ---------------------------------------------------------------- evaluate


def _evaluate(args: argparse.Namespace) -> int:
    from medviewer.app import validation
    from medviewer.commands.output import print_json
    from medviewer.jobs import Progress, run_to_end

    entry = _resolve(args.model)
    classes = list(entry.card.classes)
    pairs = validation.read_labels_csv(args.labels, classes, validation.parse_mapping(args.map))
    thresholds = validation.parse_thresholds(args.threshold, classes)
    shown = {"last": -1}

    def progress(event: object) -> None:
        # One line per tenth on stderr: stdout stays the report (or pure JSON).
        if isinstance(event, Progress) and event.total and not args.json:
            tenth = int(10 * event.done / event.total)
            if tenth > shown["last"]:
                shown["last"] = tenth
                print(f"{event.done}/{event.total} images", file=sys.stderr, flush=True)

    report = run_to_end(validation.validation_job(
        entry, pairs, user_thresholds=thresholds, device=args.device,
        batch_size=args.batch_size, source=str(args.labels)), progress)
    saved = None if args.no_save else validation.save_validation(entry, report)
    if args.json:
        print_json({**report.to_dict(), "saved": str(saved) if saved else None})
    else:
        for line in validation.report_lines(report):
            print(line)
        if saved:
            print(f"Kept as local validation {report.id} ({saved}).")
    return 0 if report.read else 1
