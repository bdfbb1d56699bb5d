"""`medviewer labels list|stats|import|export|export-dataset|history|undo|redo|recover`: the
label store from the command line."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from medviewer.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "labels", help="list, count, import, export or recover image labels",
        description="Work with the label store (default: labels.sqlite in the user data "
                    "folder; --store picks another file).")
    actions = parser.add_subparsers(dest="labels_action", metavar="ACTION", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--store", type=Path, help="label store file (default: the user's)")
        sub.add_argument("--json", action="store_true", help="print JSON")

    listing = actions.add_parser("list", help="label sets with their counts")
    common(listing)
    listing.set_defaults(handler=_disk_aware(_list))

    stats = actions.add_parser("stats", help="counts per class and reader, and agreement")
    stats.add_argument("--label-set", required=True, metavar="NAME")
    common(stats)
    stats.set_defaults(handler=_disk_aware(_stats))

    importing = actions.add_parser(
        "import", help="import labels from CSV (path,label[,reader]) or MedViewer JSON, "
                       "or regions from COCO JSON",
        description="Rows with unknown paths or classes are reported; the other rows are "
                    "imported only with --yes. The whole import is one undo step.")
    importing.add_argument("file", type=Path, metavar="FILE.csv|FILE.json")
    importing.add_argument("--label-set", metavar="NAME",
                           help="label set to import into (JSON: default the file's; COCO: "
                                "default the categories' supercategory)")
    importing.add_argument("--classes", metavar="A,B",
                           help="classes of a new label set; new names are appended to an "
                                "existing set's list")
    importing.add_argument("--multi-label", action="store_true",
                           help="a new label set allows several classes per image")
    importing.add_argument("--reader", help="reader for rows or annotations without one "
                                            "(default: you)")
    importing.add_argument("--yes", action="store_true",
                           help="import the good rows even when others have problems")
    common(importing)
    importing.set_defaults(handler=_disk_aware(_import))

    exporting = actions.add_parser(
        "export", help="write a label set to CSV, JSON, COCO or DICOM SR, or measurements "
                       "to CSV or JSON")
    exporting.add_argument("--label-set", metavar="NAME", help="the label set to write")
    exporting.add_argument("--measurements", action="store_true",
                           help="write measurements and annotations instead (all images, or "
                                "--image / --reader)")
    exporting.add_argument("--image", metavar="KEY",
                           help="with --measurements: only this image's (see export)")
    exporting.add_argument("--reader", help="with --measurements: only this reader's")
    exporting.add_argument("-o", "--output", required=True, type=Path,
                           metavar="FILE.csv|FILE.json")
    exporting.add_argument("--format", choices=("csv", "json", "coco", "dicom-sr"),
                           help="default: from the file name; coco writes the regions; "
                                "dicom-sr writes one SR per image and reader into the "
                                "folder OUTPUT")
    common(exporting)
    exporting.set_defaults(handler=_disk_aware(_export))

    dataset = actions.add_parser(
        "export-dataset", help="write a research dataset: images, labels, split, manifest",
        description="Export a label set as a research dataset folder: the images (PNG of the "
                    "model's input, or de-identified DICOM), a labels file keyed by "
                    "pseudonymous IDs (with --deidentify), a patient-level train/val/test "
                    "split and a manifest with counts and the SHA-256 of every file.")
    dataset.add_argument("--label-set", required=True, metavar="NAME")
    dataset.add_argument("-o", "--output", required=True, type=Path, metavar="DIR",
                         help="new (or empty) dataset folder")
    dataset.add_argument("--deidentify", action="store_true",
                         help="pseudonymous image and patient IDs, de-identified DICOM")
    dataset.add_argument("--key-file", type=Path, metavar="K",
                         help="project key (created if missing) for consistent pseudonyms; "
                              "also keeps a private mapping beside the label store")
    dataset.add_argument("--images", choices=("png", "dicom"), default="png",
                         help="PNG of the model's input (default) or de-identified DICOM")
    dataset.add_argument("--format", choices=("folder", "coco"), default="folder",
                         help="folder: images/<split>/<class>/ and labels.csv (default); "
                              "coco: annotations.json with regions")
    dataset.add_argument("--split-by", choices=("patient", "image"), default="patient")
    dataset.add_argument("--val-fraction", type=float, default=0.15)
    dataset.add_argument("--test-fraction", type=float, default=0.15)
    dataset.add_argument("--seed", type=int, default=0)
    dataset.add_argument("--rule", default="majority",
                         help="consensus rule: majority (default) or reader:NAME")
    dataset.add_argument("--option", action="append", default=[], metavar="OPTION",
                         help="a de-identification profile option (see medviewer deid -h)")
    dataset.add_argument("--confirm-burned-in", action="store_true",
                         help="include images that may show burned-in text")
    common(dataset)
    dataset.set_defaults(handler=_export_dataset)

    history = actions.add_parser("history", help="what changed, newest first")
    history.add_argument("--label-set", metavar="NAME")
    history.add_argument("--image", metavar="KEY", help="one image's key (see export)")
    history.add_argument("--reader", help="only labels of this reader")
    history.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    common(history)
    history.set_defaults(handler=_disk_aware(_history))

    for name, verb in (("undo", "take back your last action"),
                       ("redo", "re-apply what your last undo took back")):
        sub = actions.add_parser(name, help=verb)
        sub.add_argument("--label-set", metavar="NAME", help="only actions in this label set")
        sub.add_argument("--reader", help="act as this reader (default: the settings' reader)")
        common(sub)
        sub.set_defaults(handler=_disk_aware(_undo_or_redo), labels_verb=name)

    recovering = actions.add_parser(
        "recover", help="keep a damaged store aside and rebuild it from its readable labels")
    common(recovering)
    recovering.set_defaults(handler=_disk_aware(_recover))


def _disk_aware(handler: Callable[[argparse.Namespace], int]
                ) -> Callable[[argparse.Namespace], int]:
    """SQLite reports a full disk as a plain I/O error (opening needs room for its WAL
    index): say the disk is full when it is."""
    def run(args: argparse.Namespace) -> int:
        from medviewer.files import disk_is_full
        from medviewer.labels.errors import StoreUnavailableError
        from medviewer.labels.store import default_store_path

        try:
            return handler(args)
        except StoreUnavailableError as exc:
            path = args.store or default_store_path()
            if "disk is full" in str(exc) or not disk_is_full(path):
                raise
            raise StoreUnavailableError(f"Cannot use the label store {path}: the disk is "
                                        "full; nothing was changed.") from None

    return run


def _open(args: argparse.Namespace, *, create: bool = False, reader: str | None = None):
    from medviewer.labels.store import LabelStore, default_store_path

    from medviewer.files import os_error_reason, require_regular

    path = args.store or default_store_path()
    try:  # SQLite would open a pipe or device and report a disk I/O error
        require_regular(path)
    except FileNotFoundError:
        if not create and args.store is not None:
            raise UserError(f"There is no label store at {path}.") from None
    except OSError as exc:
        raise UserError(f"Cannot open the label store {path}: {os_error_reason(exc)}.") \
            from None
    return LabelStore(path, reader=reader)


def _export_dataset(args: argparse.Namespace) -> int:
    from medviewer.app.dataset_export import DatasetExportRequest, export_dataset_job
    from medviewer.jobs import run_to_end

    request = DatasetExportRequest(
        args.label_set, args.output, store_path=args.store, deidentify=args.deidentify,
        key_file=args.key_file, images=args.images, format=args.format,
        split_by=args.split_by, val_fraction=args.val_fraction,
        test_fraction=args.test_fraction, seed=args.seed, rule=args.rule,
        options=frozenset(args.option), confirm_burned_in=args.confirm_burned_in)
    result = run_to_end(export_dataset_job(request))
    if args.json:
        from medviewer.commands.output import print_json

        print_json(result.to_json())
        return 0
    print(f"Exported {result.images} images of {result.patients} patients to {result.output}"
          + ("" if result.deidentified else " (not de-identified: IDs are the originals)")
          + ".")
    for split, counts in result.counts.items():
        print(f"  {split}: " + (", ".join(f"{c} {n}" for c, n in sorted(counts.items()))
                                or "none"))
    for sentence in result.skipped:
        print(f"  left out: {sentence}")
    if result.key_created:
        print(f"A new project key was written to {result.key_file}: keep it private.")
    if result.mapping_file is not None:
        print(f"The mapping back to the originals is in {result.mapping_file} (private).")
    return 0


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _list(args: argparse.Namespace) -> int:
    from medviewer.commands.output import print_json

    with _open(args) as store:
        sets = store.label_sets()
        counts = store.counts()
        rows = [{"name": s.name, "classes": list(s.classes), "multi_label": s.multi_label,
                 **counts[s.name]} for s in sets]
        if args.json:
            print_json({"store": str(store.path), "label_sets": rows})
            return 0
        if not rows:
            print(f"No label sets in {store.path} yet.")
            return 0
        print(f"Label sets in {store.path}:")
        for row in rows:
            kind = "multi-label" if row["multi_label"] else "single-label"
            print(f"  {row['name']}: {kind}, classes {', '.join(row['classes'])}; "
                  f"{row['images']} images, {row['decisions']} labels by {row['readers']} "
                  f"readers, {row['regions']} regions")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from medviewer.commands.output import print_json
    from medviewer.labels.stats import label_stats

    with _open(args) as store:
        stats = label_stats(store, args.label_set)
    if args.json:
        print_json(stats)
        return 0
    kind = "multi-label" if stats["multi_label"] else "single-label"
    print(f"Label set '{stats['label_set']}' ({kind}): {stats['images']} images, "
          f"{stats['decisions']} labels, {stats['regions']} regions")
    print("Per class: " + ", ".join(f"{c} {n}" for c, n in stats["per_class"].items()))
    if stats["regions"]:
        print("Regions per class: " + ", ".join(
            f"{c} {n}" for c, n in stats["regions_per_class"].items()))
    for reader, entry in stats["per_reader"].items():
        classes = ", ".join(f"{c} {n}" for c, n in entry["classes"].items())
        print(f"  {reader}: {entry['images']} images ({classes}), {entry['regions']} regions")
    if stats["per_source"]:
        print("Sources: " + ", ".join(f"{s} {n}" for s, n in stats["per_source"].items()))
    agreement = stats["agreement"]
    lines = []
    for pair in agreement["pairs"] + agreement["reader_vs_ai"]:
        per_class = ", ".join(f"{c} {_fmt(k)}" for c, k in pair["per_class"].items())
        lines.append(f"  Cohen's kappa {pair['reader_a']} vs {pair['reader_b']}: "
                     f"{_fmt(pair['kappa'])} on {pair['images']} images ({per_class})")
    fleiss = agreement["fleiss"]
    if fleiss:
        per_class = ", ".join(f"{c} {_fmt(k)}" for c, k in fleiss["per_class"].items())
        lines.append(f"  Fleiss' kappa, {len(fleiss['readers'])} readers: "
                     f"{_fmt(fleiss['kappa'])} on {fleiss['images']} images labelled by all "
                     f"({per_class})")
    for reader, counts in agreement["ai_acceptance"].items():
        lines.append(f"  {reader} accepted {counts['accepted']} and overrode "
                     f"{counts['overridden']} AI suggestions (acceptance {_fmt(counts['rate'])})")
    print("Agreement:" if lines else "Agreement: needs two readers on the same images.")
    for line in lines:
        print(line)
    return 0


def _import(args: argparse.Namespace) -> int:
    from medviewer.commands.output import print_json
    from medviewer.jobs import run_to_end
    from medviewer.labels import io as label_io
    from medviewer.labels.errors import ImportRejectedError

    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes \
        else None
    label_io.import_kind(args.file)  # refuse other files before creating a store
    with _open(args, create=True) as store:
        plan = run_to_end(label_io.validate_file_job(
            store, args.file, args.label_set, classes=classes, multi_label=args.multi_label,
            reader=args.reader))
        problems = sorted(plan.problems, key=lambda p: p.row)
        if not args.json:
            _print_problems(args.file.name, problems, plan.problem_count)
        if problems and not args.yes:
            if args.json:
                print_json({**plan.as_dict(), "imported": False})
            raise ImportRejectedError(
                f"{plan.problem_count} of {plan.rows_total} {problems[0].where}s in "
                f"{args.file} have problems (listed above); nothing was imported: fix them, "
                f"or run again with --yes to import the other {plan.rows_ok}.")
        result = label_io.apply_import(store, plan, accept_partial=args.yes)
    if args.json:
        print_json({**plan.as_dict(), "imported": True,
                    "labels_written": result.labels_written,
                    "labels_unchanged": result.labels_unchanged,
                    "regions_written": result.regions_written,
                    "action_id": result.action_id})
        return 0
    created = " (new label set)" if result.label_set_created else ""
    left_out = f"; {plan.problem_count} problem rows left out" if problems else ""
    print(f"Imported {result.labels_written} labels and {result.regions_written} regions into "
          f"'{plan.label_set}'{created}; {result.labels_unchanged} were already there"
          f"{left_out}.")
    return 0


# The problems an import prints; --json lists more (labels.io.MAX_PROBLEMS_KEPT).
MAX_PROBLEMS_PRINTED = 50


def _print_problems(file_name: str, problems: list, count: int) -> None:
    """The first problems, one line each, and how many more there are."""
    for problem in problems[:MAX_PROBLEMS_PRINTED]:
        print(f"{file_name} {problem}")
    if count > MAX_PROBLEMS_PRINTED:
        where = problems[0].where if problems else "row"
        print(f"{file_name}: ... and {count - MAX_PROBLEMS_PRINTED} more {where}s with "
              f"problems (--json lists the first {len(problems)}).")


def _export(args: argparse.Namespace) -> int:
    from medviewer.commands.output import print_json
    from medviewer.labels import export as label_export

    if bool(args.label_set) == args.measurements:
        raise UserError("Give the label set to export (--label-set NAME) or --measurements, "
                        "one of the two.")
    if not args.measurements and (args.image or args.reader):
        raise UserError("--image and --reader choose measurements; add --measurements.")
    fmt = args.format or {".csv": "csv", ".json": "json"}.get(args.output.suffix.lower())
    if fmt is None:
        raise UserError(f"Cannot tell the format of {args.output} from its name; add "
                        f"--format csv, json or coco.")
    if args.measurements:
        return _export_measurements(args, fmt)
    write, unit = label_export.EXPORTERS[fmt]
    with _open(args) as store:
        store.label_set(args.label_set)  # a clear error for an unknown set
        count = write(store, args.label_set, args.output)
    if args.json:
        print_json({"output": str(args.output), "format": fmt, unit: count})
    else:
        print(f"Wrote {count} {unit} of label set '{args.label_set}' to {args.output} "
              f"({fmt}).")
    return 0


def _export_measurements(args: argparse.Namespace, fmt: str) -> int:
    from medviewer.commands.output import print_json
    from medviewer.labels import export as label_export

    if fmt not in label_export.MEASUREMENT_EXPORTERS:
        raise UserError(f"Measurements are written as CSV or JSON, not {fmt}.")
    with _open(args) as store:
        count = label_export.MEASUREMENT_EXPORTERS[fmt](store, args.output, image_key=args.image,
                                                    reader=args.reader)
    if args.json:
        print_json({"output": str(args.output), "format": fmt, "measurements": count})
    else:
        print(f"Wrote {count} measurement{'' if count == 1 else 's'} to {args.output} "
              f"({fmt}).")
    return 0


def _history(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from medviewer.commands.output import print_json

    with _open(args) as store:
        entries = store.history(args.label_set, args.image, reader=args.reader,
                                limit=max(1, args.limit))
    if args.json:
        print_json({"history": [asdict(e) for e in entries]})
        return 0
    if not entries:
        print("No changes recorded yet.")
        return 0
    for e in entries:
        where = f"{e.label_set}, " if e.label_set else ""
        target = f"{e.target} {e.row_id}" if e.row_id is not None else "label"
        print(f"#{e.action_id} {e.at} {e.actor}: {e.kind.replace('_', ' ')}"
              f"{f' (of #{e.undoes})' if e.undoes else ''} - {where}{target} of "
              f"{e.reader} on {e.image_key}: {_state_text(e.old)} -> {_state_text(e.new)}")
    return 0


def _state_text(state: dict | None) -> str:
    if state is None:
        return "(none)"
    if "classes" in state:
        return "+".join(state["classes"]) or "(no class)"
    if "spacing_source" in state:  # a measurement
        return " ".join(str(v) for v in (state["kind"], state.get("label")) if v)
    return str(state.get("class_name") or state.get("shape") or "region")


def _undo_or_redo(args: argparse.Namespace) -> int:
    from medviewer.commands.output import print_json

    with _open(args, reader=args.reader) as store:
        act = store.undo if args.labels_verb == "undo" else store.redo
        result = act(label_set=args.label_set)
        reader = store.reader
    if args.json:
        print_json({"action": args.labels_verb, "reader": reader,
                    "result": None if result is None else {
                        "reverted_action_id": result.undone_action_id,
                        "new_action_id": result.undo_action_id, "kind": result.kind,
                        "label_set": result.label_set, "image_keys": list(result.image_keys)}})
        return 0
    if result is None:
        print(f"Nothing to {args.labels_verb} for reader '{reader}'.")
        return 0
    count = len(result.image_keys)
    print(f"{'Undid' if args.labels_verb == 'undo' else 'Redid'} "
          f"{result.kind.replace('_', ' ')} #{result.undone_action_id} "
          f"({count} image{'' if count == 1 else 's'}"
          f"{f', label set {result.label_set}' if result.label_set else ''}) as action "
          f"#{result.undo_action_id}.")
    return 0


def _recover(args: argparse.Namespace) -> int:
    from medviewer.commands.output import print_json
    from medviewer.labels.store import LabelStore, default_store_path

    report = LabelStore.recover(args.store or default_store_path())
    if args.json:
        print_json(report.as_dict())
    else:
        print(report.summary())
    return 0
