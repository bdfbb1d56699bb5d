"""``medviewer report IMAGE --model NAME -o report.pdf``: a PDF report of an AI read.

The work is ``medviewer.app.report`` (shared with the GUI); numpy, onnxruntime and reportlab
are imported inside the handler so the CLI starts fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medviewer.errors import UserError

SALIENCY_HELP = ("auto: the class activation map from the same forward pass where the model "
                 "has one, else occlusion; cam; occlusion; none (default: auto)")


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser(
        "report", help="write a PDF report of an AI read of one image",
        description="Read IMAGE with a model and write a PDF report: patient and study "
                    "identification (or none with --deidentify), the image with its saliency "
                    "overlay, each finding with probability, operating point and decision, "
                    "the model's name, version, SHA-256, intended use and limitations, the "
                    "reader's label and note from the label store, and the disclaimer.")
    report.add_argument("image", metavar="IMAGE", type=Path,
                        help="a DICOM, PNG or JPEG image")
    report.add_argument("--model", metavar="NAME",
                        help="model card name or NAME@VERSION (default: settings' default "
                             "model, else the first built-in model)")
    report.add_argument("-o", "--output", required=True, type=Path, metavar="REPORT.pdf",
                        help="the PDF file to write")
    report.add_argument("--deidentify", action="store_true",
                        help="leave out names, identifiers, dates, institution and file name")
    report.add_argument("--frame", type=int, default=1, metavar="N",
                        help="frame number, from 1 (default 1)")
    report.add_argument("--saliency", choices=("auto", "cam", "occlusion", "none"),
                        default="auto", help=SALIENCY_HELP)
    report.add_argument("--class", dest="class_name", metavar="C",
                        help="the class the saliency map explains (default: the most probable "
                             "flagged class, else the top class)")
    report.add_argument("--reader", metavar="NAME",
                        help="whose label and note to include (default: the settings' reader)")
    report.add_argument("--label-set", metavar="SET",
                        help="the label set to take the reader's label from (default: every "
                             "set that has one)")
    report.add_argument("--no-labels", action="store_true",
                        help="do not look up the reader's label in the label store")
    report.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                        help="where to run: auto (GPU when it works, else CPU), cuda or cpu")
    report.add_argument("--json", action="store_true", help="describe what was written as JSON")
    report.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    from medviewer.app.report import ReportRequest, report_job
    from medviewer.inference.registry import resolve_model
    from medviewer.jobs import Progress, run_to_end
    from medviewer.settings import load_settings

    image: Path = args.image
    if not image.exists():
        raise UserError(f"Cannot open {image}: it does not exist.")
    if args.frame < 1:
        raise UserError(f"Cannot report on {image}: frame numbers start at 1, not {args.frame}.")
    settings = load_settings()
    entry = resolve_model(args.model, settings.default_model)
    reader = "" if args.no_labels else (args.reader or settings.reader_name)
    request = ReportRequest(image, entry, args.output, deidentify=args.deidentify,
                            frame=args.frame - 1, saliency=args.saliency,
                            class_name=args.class_name, opacity=settings.overlay_opacity,
                            device=args.device, reader=reader, label_set=args.label_set)
    show_progress = sys.stderr.isatty() and not args.json

    def on_event(event: object) -> None:
        if show_progress and isinstance(event, Progress) and event.message:
            print(f"\r{event.message:<60}", end="", file=sys.stderr, flush=True)

    result = run_to_end(report_job(request), on_event)
    if show_progress:
        print(file=sys.stderr)
    prediction = result.prediction
    if args.json:
        from medviewer.commands.output import print_json

        print_json({
            "output": str(result.output), "pages": result.pages,
            "deidentified": args.deidentify, "provider": result.provider,
            "notice": result.notice,
            "saliency": result.saliency.to_dict() if result.saliency else None,
            "prediction": {**prediction.to_dict(),
                           **({"path": None, "input_uid": None} if args.deidentify else {})},
        })
        return 0
    if result.notice:
        print(f"Notice: {result.notice}")
    flagged = ", ".join(prediction.flagged) or "nothing flagged"
    method = f", {result.saliency.method} saliency" if result.saliency else ""
    print(f"Wrote {result.output}: {result.pages} page{'s' if result.pages != 1 else ''}, "
          f"model {prediction.model_name} {prediction.model_version} on {result.provider}"
          f"{method}; {flagged}.")
    return 0
