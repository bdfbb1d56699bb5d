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
