"""User folders: under MEDVIEWER_HOME in tests, and private to their owner."""

from __future__ import annotations

import os
import stat

import pytest

from medviewer import paths


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("folder", [paths.user_data_dir, paths.user_config_dir,
                                    paths.user_cache_dir])
def test_app_folders_are_private_even_when_they_existed_open(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIEWER_HOME", str(tmp_path))
    made = folder()
    assert made.is_relative_to(tmp_path)
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    made.chmod(0o755)  # an older version, or a loose umask, left it open
    assert stat.S_IMODE(folder().stat().st_mode) == 0o700
    assert paths.user_models_dir().is_relative_to(paths.user_data_dir())


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_model_cards_and_label_exports_are_as_readable_as_any_new_file(tmp_path):
    from medviewer.inference.registry import _write_atomically
    from medviewer.labels.export import atomic_writer

    old = os.umask(0o022)
    try:
        _write_atomically(tmp_path / "card.json", "{}")
        with atomic_writer(tmp_path / "labels.csv") as handle:
            handle.write("path,label\n")
        assert paths.new_file_mode() == 0o644
    finally:
        os.umask(old)
    for name in ("card.json", "labels.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_write_atomically_is_owner_only_unless_the_file_is_the_users_to_hand_on(tmp_path):
    old = os.umask(0o022)
    try:
        paths.write_atomically(tmp_path / "settings.json", "{}")
        paths.write_atomically(tmp_path / "report.pdf", b"%PDF-1.4\n", private=False)
        paths.write_atomically(tmp_path / "report.pdf", b"%PDF-1.7\n", private=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "settings.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "report.pdf").stat().st_mode) == 0o644
    assert (tmp_path / "report.pdf").read_bytes() == b"%PDF-1.7\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.pdf", "settings.json"]
