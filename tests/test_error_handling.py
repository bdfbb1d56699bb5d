"""The outermost handler (cli.main), the log file it names, and safe file opening."""

from __future__ import annotations

import errno
import logging
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medviewer import cli, error_log, files
from medviewer.errors import UserError
from medviewer.paths import PROJECT_ROOT, SAMPLE_STUDY_DIR


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_sentence(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("medviewer: ") and lines[0].endswith("."), lines[0]
    assert "Traceback" not in err
    return lines[0]


# ---------------------------------------------------------------- files


def test_only_regular_files_are_opened_and_a_fifo_never_blocks(tmp_path):
    fifo = tmp_path / "pipe.dcm"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(files.NotAFileError) as raised:
        files.open_regular(fifo)
    assert time.monotonic() - started < 2
    assert files.os_error_reason(raised.value) == "it is a named pipe (FIFO), not a regular file"
    with pytest.raises(files.NotAFileError, match="a folder"):
        files.open_regular(tmp_path)
    with pytest.raises(ValueError):
        files.open_regular(tmp_path / "x", "w")
    (tmp_path / "plain.txt").write_text("hello")
    with files.open_regular(tmp_path / "plain.txt", "r", encoding="utf-8") as handle:
        assert handle.read() == "hello"
    assert files.require_regular(tmp_path / "plain.txt").st_size == 5
    with pytest.raises(files.NotAFileError):
        files.require_regular(fifo)


def test_outputs_must_be_regular_files_or_new(tmp_path):
    files.check_output_path(tmp_path / "new.png")  # nothing there: fine
    (tmp_path / "old.png").write_bytes(b"x")
    files.check_output_path(tmp_path / "old.png")
    os.mkfifo(tmp_path / "pipe.png")
    for bad in (tmp_path / "pipe.png", tmp_path, Path("/dev/null")):
        with pytest.raises(files.NotAFileError):
            files.check_output_path(bad)
    with pytest.raises(UserError, match="the folder .* does not exist"):
        files.check_output_file(tmp_path / "no" / "such.png")
    with pytest.raises(UserError, match="its name is too long for the file system"):
        files.check_output_file(tmp_path / ("x" * 300 + ".png"))


@pytest.mark.parametrize("code, words", [
    (errno.ENOENT, "does not exist"), (errno.EACCES, "permission"),
    (errno.ENAMETOOLONG, "too long"), (errno.ENOSPC, "the disk is full"),
    (errno.EROFS, "read-only"), (errno.ENOTDIR, "not a folder"), (errno.EISDIR, "a folder"),
])
def test_os_errors_in_the_users_words(code, words):
    reason = files.os_error_reason(OSError(code, os.strerror(code), "/some/file"))
    assert words in reason and "Errno" not in reason and not reason.endswith(".")


def test_a_full_disk_is_recognised_by_its_free_space(tmp_path, monkeypatch):
    assert not files.disk_is_full(tmp_path / "missing" / "deeper")
    assert not files.disk_is_full(tmp_path)
    usage = files.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(files.shutil, "disk_usage", lambda _path: usage._replace(free=1000))
    assert files.disk_is_full(tmp_path)


# ---------------------------------------------------------------- the log file


def test_an_unexpected_error_is_logged_privately_and_named_in_one_sentence(isolated_home):
    path = error_log.configure_logging()
    try:
        raise ZeroDivisionError("a bug, deep inside")
    except ZeroDivisionError as exc:
        sentence = error_log.unexpected_error_sentence(exc, "testing")
    assert sentence == (f"An unexpected error (ZeroDivisionError) stopped MedViewer while "
                        f"testing; the details are in {path}.")
    text = path.read_text()
    assert "Traceback" in text and "a bug, deep inside" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.parent == isolated_home / "logs"


def test_the_log_file_is_rotated(isolated_home, monkeypatch):
    monkeypatch.setattr(error_log, "MAX_LOG_BYTES", 2000)
    path = error_log.configure_logging()
    for number in range(200):
        logging.getLogger("medviewer.test").info("line %d %s", number, "x" * 50)
    backups = sorted(path.parent.glob("medviewer.log.*"))
    assert 1 <= len(backups) <= error_log.LOG_BACKUPS
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in [path, *backups])
    assert path.stat().st_size <= 2000


def test_a_log_that_cannot_be_written_is_said_not_raised(isolated_home):
    (isolated_home / "logs").write_text("a file where the log folder should be")
    error_log.configure_logging()
    sentence = error_log.unexpected_error_sentence(ValueError("x"), "testing")
    assert sentence.endswith("could not be written.") and "ValueError" in sentence


def test_terminal_records_are_one_line_without_traceback(capsys):
    error_log.configure_logging()
    try:
        raise KeyError("inner")
    except KeyError:
        logging.getLogger("medviewer.test").error("it failed\nsecond line", exc_info=True)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "second line" in err


# ---------------------------------------------------------------- cli.main


def test_a_bug_in_a_command_is_one_sentence_naming_the_log(capsys, monkeypatch, isolated_home):
    from medviewer.commands import viewer

    def broken(_args):
        return {}["no such key"]

    monkeypatch.setattr(viewer, "run_info", broken)
    code, out, err = run(capsys, "info", SAMPLE_STUDY_DIR)
    sentence = one_sentence(err)
    assert code == 1 and out == ""
    assert "KeyError" in sentence and "running 'medviewer info'" in sentence
    log_file = isolated_home / "logs" / "medviewer.log"
    assert str(log_file) in sentence and "no such key" in log_file.read_text()


def test_an_os_error_is_the_file_and_the_reason(capsys, monkeypatch):
    from medviewer.commands import viewer

    def too_long(_args):
        raise OSError(errno.ENAMETOOLONG, "File name too long", "/x/" + "y" * 300)

    monkeypatch.setattr(viewer, "run_info", too_long)
    code, _, err = run(capsys, "info", SAMPLE_STUDY_DIR)
    assert code == 1
    assert one_sentence(err).endswith("y: its name is too long for the file system.")


def test_a_mistyped_command_names_the_closest_and_never_opens_the_window(capsys, monkeypatch):
    import medviewer.gui.app

    monkeypatch.setattr(medviewer.gui.app, "run_gui",
                        lambda paths: pytest.fail(f"the GUI was opened for {paths}"))
    code, out, err = run(capsys, "rendr", "x.dcm")
    sentence = one_sentence(err)
    assert code == 1 and out == ""
    assert "'rendr' is neither a command nor an existing file or folder" in sentence
    assert "the closest command is 'render'" in sentence
    code, _, err = run(capsys, "qqqq", "pull")
    assert code == 1 and "no command is close to it" in one_sentence(err)
    code, _, err = run(capsys, "pacs", "pull")  # a command's own choices are named too
    assert code == 1 and "'pull' is not one of servers, echo" in one_sentence(err)
    code, _, err = run(capsys, "labels", "lsit")
    assert code == 1 and "the closest is 'list'" in one_sentence(err)
    code, _, err = run(capsys, "render", "--frame", "two")
    assert code == 1 and "see 'medviewer render --help'" in one_sentence(err)


def test_an_existing_path_still_opens_the_window(capsys, monkeypatch):
    import medviewer.gui.app

    opened = []
    monkeypatch.setattr(medviewer.gui.app, "run_gui", lambda paths: opened.append(paths) or 0)
    assert cli.main([str(SAMPLE_STUDY_DIR)]) == 0
    assert opened == [[str(SAMPLE_STUDY_DIR)]]


def _run_with_closed_stdout(*argv: str, home: Path) -> subprocess.CompletedProcess:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "medviewer", *argv], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120,
                              env=dict(os.environ, MEDVIEWER_HOME=str(home),
                                       PYTHONPATH=str(PROJECT_ROOT)))
    finally:
        os.close(write_end)


@pytest.mark.parametrize("argv", [("info", str(SAMPLE_STUDY_DIR)), ("labels", "list"),
                                  ("info", "--help")])
def test_a_closed_stdout_is_one_sentence(argv, tmp_path):
    done = _run_with_closed_stdout(*argv, home=tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stderr == ("medviewer: the rest of the output was not written because the "
                           "program reading it stopped early.\n")


def test_names_that_are_not_utf8_are_printed_escaped(tmp_path, capsys):
    folder = tmp_path / "study"
    folder.mkdir()
    odd = os.fsdecode(bytes(folder) + b"/caf\xe9.dcm")
    Path(odd).write_bytes((SAMPLE_STUDY_DIR / "S01_I01.dcm").read_bytes())
    (folder / "broken\udcff.dcm".encode("utf-8", "surrogateescape").decode(
        "utf-8", "surrogateescape")).write_bytes(b"\0" * 300)
    done = subprocess.run([sys.executable, "-m", "medviewer", "info", str(folder)],
                          capture_output=True, timeout=120,
                          env=dict(os.environ, MEDVIEWER_HOME=str(tmp_path / "home"),
                                   PYTHONPATH=str(PROJECT_ROOT)))
    assert done.returncode == 0, done.stderr
    # Escaped under a UTF-8 locale, the name's own bytes under the C locale: never a crash.
    assert b"caf\\udce9.dcm" in done.stdout or b"caf\xe9.dcm" in done.stdout
    assert b"broken\\udcff.dcm" in done.stdout or b"broken\xff.dcm" in done.stdout
    again = subprocess.run([sys.executable, "-m", "medviewer", "info", str(folder), "--json"],
                           capture_output=True, timeout=120,
                           env=dict(os.environ, MEDVIEWER_HOME=str(tmp_path / "home"),
                                    PYTHONPATH=str(PROJECT_ROOT)))
    assert again.returncode == 0 and b'"from_cache": 2' in again.stdout  # keyed by bytes
