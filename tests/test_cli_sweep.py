"""Every sub-command, enumerated from the parser, under hostile conditions (issue #17).

Each leaf command of ``medviewer.cli.build_parser()`` (so commands added later are swept
too) runs as a real process with, in turn, each of its path arguments set to: a name that
is not valid UTF-8, a path with a 300-byte component, a named pipe (FIFO), a folder, and a
file it may not read; each of its output arguments set to a 5,000-character path, a
300-byte component, a FIFO and a folder; and once with its standard output already closed.
Every run must end within ``TIME_BOUND_S`` with exit 1 (or 0 where the input is
legitimately fine) and at most one sentence on stderr, never a traceback.

Arguments are filled from the parser: positionals and path-like options (``type=Path`` or a
name such as file, path, store, card, data, dir, checkpoint) are inputs; ``-o/--output``,
``--out``, ``--out-dir`` and ``--csv`` are outputs; other required options get a plain word.

Tests run as root here, and root reads any file, so the unreadable-file runs drop the
capabilities that let root ignore file modes (CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH)
from the child's bounding set before it starts: it stays root (the interpreter lives under
/root, which ``nobody`` could not even enter) but a mode-000 file is then unreadable to it.
Not as root, chmod 000 alone does it.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from medviewer.cli import build_parser
from medviewer.paths import PROJECT_ROOT, SAMPLE_STUDY_DIR

TIME_BOUND_S = 90  # torch and onnxruntime imports on a loaded CI machine included
PARALLEL_RUNS = 3

OUTPUT_DESTS = frozenset({"output", "out", "out_dir", "csv"})
_PATH_WORDS = ("file", "path", "store", "card", "data", "dir", "checkpoint", "resume", "init")
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _PR_CAPBSET_DROP = 1, 2, 24


# ---------------------------------------------------------------- the commands


@dataclass(frozen=True)
class Slot:
    """One argument of a command: how to put a value there."""

    flag: str | None  # None for a positional
    dest: str
    suffix: str  # the file name suffix its metavar asks for ('.csv', '.onnx', '.png', '')

    @property
    def input_suffix(self) -> str:
        return self.suffix or ".dcm"


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]
    inputs: tuple[Slot, ...]
    outputs: tuple[Slot, ...]
    words_for: tuple[tuple[str, str], ...]  # required non-path options: (flag, word)

    @property
    def name(self) -> str:
        return " ".join(self.words)


def _suffix(action: argparse.Action) -> str:
    """The file name suffix the argument's metavar asks for ('' when it names none)."""
    found = re.search(r"\.(csv|json|onnx|png|pt)\b", str(action.metavar or ""))
    return f".{found.group(1)}" if found else ""


def _is_path_option(action: argparse.Action) -> bool:
    if action.type is Path:
        return True
    text = f"{action.dest} {action.metavar or ''}".lower()
    return action.nargs != 0 and not action.choices and any(w in text for w in _PATH_WORDS)


def leaf_commands() -> list[Command]:
    """Every parser that runs a handler, with its arguments sorted into slots."""
    found: list[Command] = []

    def walk(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if words and parser.get_default("handler") is not None:
            inputs, outputs, plain = [], [], []
            for action in parser._actions:
                if isinstance(action, (argparse._SubParsersAction, argparse._HelpAction)) \
                        or action.nargs == 0:
                    continue
                flag = action.option_strings[-1] if action.option_strings else None
                slot = Slot(flag, action.dest, _suffix(action))
                if action.dest in OUTPUT_DESTS:
                    outputs.append(slot)
                elif flag is None or _is_path_option(action):
                    inputs.append(slot)
                elif action.required:
                    plain.append((flag, action.choices[0] if action.choices else "sweep"))
            found.append(Command(words, tuple(inputs), tuple(outputs), tuple(plain)))
        for action in subparsers:
            for name, sub in action.choices.items():
                walk(sub, (*words, name))

    walk(build_parser(), ())
    return found


COMMANDS = leaf_commands()


# ---------------------------------------------------------------- hostile things


class Hostile:
    """The files and paths the sweep hands to commands, made once per module."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True)
        self.benign = root / "benign"
        self.benign.mkdir()
        self.sample = SAMPLE_STUDY_DIR / "S01_I01.dcm"
        self.folder = root / "a folder"
        self.folder.mkdir()
        self.fifo_dir = root / "fifos"
        self.fifo_dir.mkdir()
        self.locked = root / "locked"
        self.locked.mkdir()
        self.odd = root / "odd"
        self.odd.mkdir()

    def benign_input(self, slot: Slot) -> str:
        path = self.benign / f"input{slot.input_suffix}"
        if not path.exists():
            shutil.copy(self.sample, path)
        return str(path)

    def benign_output(self, slot: Slot, index: int) -> str:
        return str(self.benign / f"out-{index}{slot.suffix}")

    def input(self, condition: str, slot: Slot) -> str:
        name = f"sample{slot.input_suffix}"
        if condition == "non_utf8_name":
            path = os.fsdecode(bytes(self.odd) + b"/caf\xe9-" + name.encode())
            if not os.path.exists(path):
                shutil.copy(self.sample, path)
            return path
        if condition == "long_component":
            return str(self.root / ("c" * 300 + slot.input_suffix))
        if condition == "fifo":
            path = self.fifo_dir / name
            if not path.exists():
                os.mkfifo(path)
            return str(path)
        if condition == "folder":
            return str(self.folder)
        if condition == "unreadable":
            path = self.locked / name
            if not path.exists():
                shutil.copy(self.sample, path)
                path.chmod(0)
            return str(path)
        raise AssertionError(condition)

    def output(self, condition: str, slot: Slot) -> str:
        if condition == "very_long_path":
            return str(self.root / "/".join(["d" * 200] * 25)) + slot.suffix
        if condition == "long_component":
            return str(self.root / ("o" * 300 + slot.suffix))
        if condition == "fifo":
            path = self.fifo_dir / f"output-{slot.dest}"
            if not path.exists():
                os.mkfifo(path)
            return str(path)
        if condition == "folder":
            return str(self.folder)
        raise AssertionError(condition)


INPUT_CONDITIONS = ("non_utf8_name", "long_component", "fifo", "folder", "unreadable")
OUTPUT_CONDITIONS = ("very_long_path", "long_component", "fifo", "folder")


@dataclass(frozen=True)
class Run:
    command: Command
    condition: str
    slot: Slot | None  # the argument made hostile (None: closed stdout)


def all_runs() -> list[Run]:
    runs = []
    for command in COMMANDS:
        for slot in command.inputs:
            runs += [Run(command, condition, slot) for condition in INPUT_CONDITIONS]
        for slot in command.outputs:
            runs += [Run(command, condition, slot) for condition in OUTPUT_CONDITIONS]
        if not command.inputs and not command.outputs:
            runs.append(Run(command, "no_arguments", None))
        runs.append(Run(command, "closed_stdout", None))
        runs.append(Run(command, "closed_stdout_help", None))
    return runs


def argv_for(run: Run, hostile: Hostile) -> list[str]:
    argv = list(run.command.words)
    for slot in run.command.inputs:
        if slot.flag is not None and slot is not run.slot:
            continue  # optional inputs stay unset unless they are the one under test
        value = hostile.input(run.condition, slot) if slot is run.slot \
            else hostile.benign_input(slot)
        argv += [value] if slot.flag is None else [slot.flag, value]
    for index, slot in enumerate(run.command.outputs):
        if slot is run.slot:
            argv += [slot.flag, hostile.output(run.condition, slot)]
        elif slot.dest != "csv":  # --csv is optional
            argv += [slot.flag, hostile.benign_output(slot, index)]
    for flag, word in run.command.words_for:
        argv += [flag, word]
    if run.condition == "closed_stdout_help":
        argv.append("--help")
    return argv


# ---------------------------------------------------------------- running one


def _drop_file_mode_override() -> None:
    """In the child, before exec: root without the capabilities that bypass file modes."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "cannot drop a capability")


@dataclass
class Outcome:
    argv: list[str]
    code: int | None
    stderr: str
    stdout: str
    seconds: float


def execute(run: Run, hostile: Hostile, home: Path) -> Outcome:
    argv = argv_for(run, hostile)
    env = dict(os.environ, MEDVIEWER_HOME=str(home), QT_QPA_PLATFORM="offscreen",
               PYTHONPATH=str(PROJECT_ROOT), PYTHONDONTWRITEBYTECODE="1")
    env.pop("MEDVIEWER_MODELS_DIR", None)
    preexec = _drop_file_mode_override if run.condition == "unreadable" and os.geteuid() == 0 \
        else None
    stdout_target: int = subprocess.PIPE
    read_end = write_end = None
    if run.condition.startswith("closed_stdout"):
        read_end, write_end = os.pipe()
        os.close(read_end)  # nothing will ever read: every write fails with EPIPE
        stdout_target = write_end
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "medviewer", *argv], env=env,
                              stdout=stdout_target, stderr=subprocess.PIPE, cwd=hostile.root,
                              timeout=TIME_BOUND_S, preexec_fn=preexec)
        code = done.returncode
        stdout = done.stdout.decode("utf-8", "replace") if done.stdout else ""
        stderr = done.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as expired:
        code, stdout = None, ""
        stderr = (expired.stderr or b"").decode("utf-8", "replace")
    finally:
        if write_end is not None:
            os.close(write_end)
    return Outcome(argv, code, stderr, stdout, time.monotonic() - started)


def problems_with(run: Run, outcome: Outcome) -> list[str]:
    """What is wrong with how the run ended ([] when it ended as it must)."""
    found = []
    if outcome.code is None:
        return [f"no exit within {TIME_BOUND_S} s (a hang)"]
    for stream, text in (("stderr", outcome.stderr), ("stdout", outcome.stdout)):
        if "Traceback" in text or re.search(r'File ".*", line \d+', text):
            found.append(f"a traceback on {stream}")
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    if outcome.code == 0:
        if lines:
            found.append(f"exit 0 but stderr says {lines!r}")
    elif outcome.code == 1:
        if len(lines) != 1:
            found.append(f"exit 1 with {len(lines)} lines on stderr: {lines[:4]!r}")
        elif not (lines[0].startswith("medviewer: ") and lines[0].rstrip().endswith(".")):
            found.append(f"not one sentence: {lines[0][:300]!r}")
    else:
        found.append(f"exit code {outcome.code}")
    if outcome.code == 0 and run.condition in ("fifo", "folder", "unreadable",
                                               "long_component", "very_long_path") \
            and run.slot is not None and run.slot.flag is None:
        found.append("exit 0 for an input or output that cannot be used")
    return found


# ---------------------------------------------------------------- the tests


def test_the_sweep_finds_every_command_and_its_arguments():
    names = {command.name for command in COMMANDS}
    assert {"info", "render", "models list", "models import", "predict", "saliency",
            "labels import", "labels export", "labels list", "labels stats"} <= names
    by_name = {command.name: command for command in COMMANDS}
    assert [slot.dest for slot in by_name["render"].outputs] == ["output"]
    assert [slot.dest for slot in by_name["predict"].outputs] == ["csv"]
    assert {slot.dest for slot in by_name["labels import"].inputs} == {"file", "store"}
    assert by_name["labels import"].inputs[0].suffix == ".csv"
    assert by_name["labels export"].outputs[0].suffix == ".csv"
    assert by_name["models import"].inputs[0].suffix == ".onnx"
    assert ("--label-set", "sweep") in by_name["labels stats"].words_for
    assert len(all_runs()) > 8 * len(COMMANDS)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_every_command_ends_in_one_sentence_under_hostile_input(tmp_path, capsys):
    hostile = Hostile(tmp_path / "sweep")
    home = tmp_path / "home"
    runs = all_runs()
    with ThreadPoolExecutor(PARALLEL_RUNS) as pool:
        outcomes = list(pool.map(lambda run: execute(run, hostile, home), runs))
    failures = []
    for run, outcome in zip(runs, outcomes):
        for problem in problems_with(run, outcome):
            failures.append(f"medviewer {run.command.name} [{run.condition}"
                            f"{' ' + run.slot.dest if run.slot else ''}]: {problem}")
    slowest = max(outcomes, key=lambda o: o.seconds)
    with capsys.disabled():
        print(f"\nsweep: {len(runs)} runs of {len(COMMANDS)} commands; slowest "
              f"{slowest.seconds:.1f} s ({' '.join(slowest.argv[:2])})")
    assert not failures, f"{len(failures)} runs failed:\n" + "\n".join(failures[:40])
