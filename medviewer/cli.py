"""The one entry point: the GUI by default, sub-commands for scripting.

Each area registers its sub-commands from a module in ``medviewer/commands``. Every command
prints human-readable text (``--json`` on request), returns 0 on success and 1 on a user
error with one sentence on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from medviewer import __version__
from medviewer.errors import UserError

# Each module has register(subparsers); heavy imports (Qt, torch, onnxruntime) stay inside handlers.
COMMAND_MODULES = (
    "medviewer.commands.viewer",
    "medviewer.commands.models",
    "medviewer.commands.labels",
    "medviewer.commands.training",
    "medviewer.commands.report",
    "medviewer.commands.deid",
    "medviewer.commands.pacs",
)

Handler = Callable[[argparse.Namespace], int]


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="medviewer",
        description="View DICOM and X-ray studies, run AI reads, label images and retrain models.",
    )
    parser.add_argument("--version", action="version", version=f"medviewer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument(
        "--self-test", action="store_true",
        help="run a headless end-to-end check of the installation and exit",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(subparsers)
    parser.set_defaults(command_names=frozenset(subparsers.choices))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `medviewer [PATH]`: anything that is not a known command opens the GUI.
    parser = build_parser()
    known_commands = parser.get_default("command_names")
    gui_paths: list[str] = []
    if not argv or (argv[0] not in known_commands and not argv[0].startswith("-")):
        gui_paths, argv = argv, []
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Every read is recorded: the audit log subscribes to "prediction made" before any
    # command, the self-test or the GUI can make one (idempotent).
    from medviewer.inference.audit import connect_audit_log

    connect_audit_log()
    try:
        if args.self_test:
            from medviewer.gui.selftest_window import GUI_CHECKS
            from medviewer.selftest import run_self_test

            return run_self_test(GUI_CHECKS)
        if args.command is None:
            from medviewer.gui.app import run_gui

            return run_gui(gui_paths)
        return args.handler(args)
    except UserError as exc:
        print(f"medviewer: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("medviewer: interrupted", file=sys.stderr)
        return 130
