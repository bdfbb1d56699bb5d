"""The one entry point: the GUI by default, sub-commands for scripting.

Each area registers its sub-commands from a module in ``medviewer/commands``. Every command
prints human-readable text (``--json`` on request), returns 0 on success and 1 on failure
with one sentence on stderr, never a traceback. :func:`main` is the outermost handler of
every command and of the GUI's start: a ``UserError`` is its own sentence, an ``OSError``
names the file and the reason, a closed stdout stops the output quietly, and anything
unexpected becomes one sentence naming the log file that holds its traceback
(``medviewer.error_log``). A first argument that is neither a command nor an existing path
is refused with the closest command: it never opens the GUI.
"""

from __future__ import annotations

import argparse
import difflib
import io
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from medviewer import __version__
from medviewer.errors import UserError

log = logging.getLogger(__name__)

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


class UsageError(UserError):
    """A command line that does not parse: one sentence, exit 1 (argparse would exit 2)."""


class CommandLineParser(argparse.ArgumentParser):
    """argparse whose mistakes are one :class:`UsageError` sentence naming the closest choice.

    Sub-command parsers are made with the same class (``add_subparsers`` uses the parent's).
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help').")

    def _print_message(self, message: str, file: Any = None) -> None:
        # argparse drops write errors; a closed stdout must be reported like anywhere else.
        if message:
            (file or sys.stderr).write(message)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is not None and value not in action.choices:
            choices = [str(choice) for choice in action.choices]
            close = difflib.get_close_matches(str(value), choices, n=1)
            hint = f"; the closest is '{close[0]}'" if close else ""
            raise argparse.ArgumentError(
                action, f"'{_shortened(str(value))}' is not one of {', '.join(choices)}{hint}")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = CommandLineParser(
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
    _tolerate_unencodable_text()
    from medviewer.error_log import configure_logging

    configure_logging(verbose="-v" in argv or "--verbose" in argv)
    doing = ["starting"]  # what the sentence of an unexpected error says we were doing
    try:
        return _run(argv, doing)
    except BrokenPipeError:
        # `medviewer ... | head`: the reader is gone; stop writing, without a traceback.
        _silence_stdout()
        _say("the rest of the output was not written because the program reading it "
             "stopped early.")
        return 1
    except KeyboardInterrupt:
        _say("interrupted.")
        return 130
    except UserError as exc:
        _say(str(exc))
        return 1
    except OSError as exc:
        from medviewer.files import os_error_reason

        if exc.filename is None:
            _say(_unexpected(exc, doing[0]))
        else:
            log.info("%s failed on a file", doing[0], exc_info=True)  # the log file only
            _say(f"Cannot open {os.fsdecode(exc.filename)}: {os_error_reason(exc)}.")
        return 1
    except MemoryError:
        _say(f"There is not enough memory for {doing[0]}.")
        return 1
    except Exception as exc:  # noqa: BLE001 - the outermost handler: one sentence, a log entry
        _say(_unexpected(exc, doing[0]))
        return 1


def _run(argv: list[str], doing: list[str]) -> int:
    parser = build_parser()
    commands = sorted(parser.get_default("command_names"))
    gui_paths: list[str] = []
    if not argv:
        pass
    elif not argv[0].startswith("-") and argv[0] not in commands:
        # `medviewer [PATH...]` opens the GUI; anything else is a mistyped command.
        if not os.path.exists(argv[0]):
            raise UsageError(_unknown_command(argv[0], commands))
        gui_paths, argv = argv, []
    try:
        args = parser.parse_args(argv)
    except SystemExit:  # --help, --version: their text must reach the reader, or say not
        sys.stdout.flush()
        raise
    if args.verbose:
        from medviewer.error_log import configure_logging

        configure_logging(verbose=True)
    # Every read is recorded: the audit log subscribes to "prediction made" before any
    # command, the self-test or the GUI can make one (idempotent).
    from medviewer.inference.audit import connect_audit_log

    connect_audit_log()
    if args.self_test:
        doing[0] = "running the self-test"
        from medviewer.gui.selftest_window import GUI_CHECKS
        from medviewer.selftest import run_self_test

        return run_self_test(GUI_CHECKS)
    if args.command is None:
        doing[0] = "starting the window"
        from medviewer.gui.app import run_gui

        return run_gui(gui_paths)
    words = [args.command] + [str(value) for key, value in sorted(vars(args).items())
                              if key.endswith("_action") and isinstance(value, str)]
    doing[0] = f"running 'medviewer {' '.join(words)}'"
    code = args.handler(args)
    sys.stdout.flush()  # a closed stdout is reported here, not at the interpreter's exit
    return code


def _unknown_command(word: str, commands: list[str]) -> str:
    close = difflib.get_close_matches(word, commands, n=1)
    closest = f"the closest command is '{close[0]}'" if close else "no command is close to it"
    return (f"'{_shortened(word)}' is neither a command nor an existing file or folder; "
            f"{closest} (commands: {', '.join(commands)}).")


def _shortened(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _unexpected(exc: BaseException, doing: str) -> str:
    from medviewer.error_log import unexpected_error_sentence

    return unexpected_error_sentence(exc, doing)


def _say(sentence: str) -> None:
    """One line on stderr; nothing at all if stderr is closed too."""
    try:
        print(f"medviewer: {sentence}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _tolerate_unencodable_text() -> None:
    """File names that are not valid UTF-8 reach print() as surrogates; show them escaped
    instead of failing on them."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            try:
                stream.reconfigure(errors="backslashreplace")
            except (AttributeError, ValueError, io.UnsupportedOperation):
                pass


def _silence_stdout() -> None:
    """Point stdout at the null device, so the interpreter's final flush is silent too."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
