"""`medviewer deid IN... -o OUT`: de-identify DICOM files, folders and DICOMDIRs (PS3.15 E)."""

from __future__ import annotations

import argparse
from pathlib import Path

from medviewer.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    from medviewer.dicom.deid.profile import OPTIONS

    parser = subparsers.add_parser(
        "deid", help="de-identify DICOM files into a new folder (PS3.15 Basic Profile)",
        description="Copy DICOM files, folders or DICOMDIRs into a new folder with a DICOMDIR, "
                    "de-identified by the PS3.15 Annex E Basic Application Level "
                    "Confidentiality Profile and the options given. The inputs are never "
                    "written to. Files that may show identity in their pixels (burned-in "
                    "text: ultrasound, secondary captures, ...) are refused unless confirmed "
                    "or masked; a file that records its pixels were cleaned (masked by an "
                    "earlier de-identification) is not.")
    parser.add_argument("inputs", nargs="+", type=Path, metavar="IN",
                        help="DICOM file, folder or DICOMDIR")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUT",
                        help="new (or empty) output folder")
    parser.add_argument("--profile", choices=("basic",), default="basic",
                        help="the confidentiality profile (basic)")
    parser.add_argument("--option", action="append", default=[], choices=sorted(OPTIONS),
                        metavar="OPTION",
                        help="a profile option, repeatable: " + ", ".join(sorted(OPTIONS)))
    parser.add_argument("--key-file", type=Path, metavar="K",
                        help="project key (created if missing): the same key gives the same "
                             "pseudonyms and UIDs, so exports link up; also writes a private "
                             "mapping back to the originals in your data folder")
    parser.add_argument("--keep-private", action="append", default=[], metavar="CREATOR,GGGG,EE",
                        help="a private attribute to keep as it is, repeatable (default: all "
                             "removed; with --option retain-safe-private, the known safe ones "
                             "are kept)")
    parser.add_argument("--confirm-burned-in", action="store_true",
                        help="include files that may show burned-in text, unmasked: you have "
                             "checked that their pixels hold no identity")
    parser.add_argument("--mask", action="append", default=[], metavar="X,Y,W,H",
                        help="a rectangle (image pixels) to black out on every frame of the "
                             "files flagged for burned-in text, repeatable")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=run_deid)


def run_deid(args: argparse.Namespace) -> int:
    from medviewer.dicom.deid.job import DeidRequest, deidentify_job
    from medviewer.dicom.deid.pixels import MaskRect, PixelMask
    from medviewer.dicom.deid.profile import PrivateTag, Profile
    from medviewer.jobs import run_to_end

    try:
        rects = tuple(MaskRect.parse(text) for text in args.mask)
    except ValueError as exc:
        raise UserError(f"A --mask is not usable: {exc}.") from None
    profile = Profile(frozenset(args.option),
                      frozenset(PrivateTag.parse(t) for t in args.keep_private))
    request = DeidRequest(args.inputs, args.output, profile, key_file=args.key_file,
                          confirm_burned_in=args.confirm_burned_in,
                          mask=PixelMask(rects) if rects else None)
    result = run_to_end(deidentify_job(request))
    if args.json:
        from medviewer.commands.output import print_json

        print_json(result.to_json())
    else:
        print_report(result)
    if not result.written:
        raise UserError(f"No file was de-identified ({len(result.refused)} refused"
                        + (f"; first: {result.refused[0]}" if result.refused else "") + ").")
    return 0


def print_report(result) -> None:
    if result.output is not None:
        print(f"De-identified {result.written} files of {result.patients} patients into "
              f"{result.output} (with a DICOMDIR).")
    if result.masked:
        print(f"Masked the pixels of {result.masked} files.")
    if result.changes:
        print("What changed (files per attribute):")
        for name, actions in result.changes_by_attribute().items():
            print(f"  {name}: " + ", ".join(f"{a} {n}" for a, n in actions.items()))
    if result.refused:
        print(f"Refused {len(result.refused)} files:")
        for refused in result.refused:
            print(f"  {refused}")
    if result.key_created:
        print(f"A new project key was written to {result.key_file}: keep it private, and use "
              f"it again so later exports link up.")
    if result.mapping_file is not None:
        print(f"The mapping back to the originals is in {result.mapping_file} (private).")
