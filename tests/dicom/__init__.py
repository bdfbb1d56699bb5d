"""Tests of the Qt-free DICOM layer; the helpers here find the test corpora.

The corpus is every file under ../shared/data/dicom plus pydicom's and pydicom-data's own
test files (found on disk: ``pydicom.data.get_testdata_file`` would try to download).
"""

from __future__ import annotations

from pathlib import Path

import pydicom

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_DICOM = (PROJECT_ROOT.parent / "shared" / "data" / "dicom").resolve()
PYDICOM_TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def _pydicom_data_dir() -> Path | None:
    try:
        import data_store  # the pydicom-data package
    except ImportError:
        return None
    return Path(data_store.__file__).parent / "data"


PYDICOM_DATA = _pydicom_data_dir()

# (label used in test ids, folder)
CORPUS_ROOTS: list[tuple[str, Path]] = [
    ("shared", SHARED_DICOM),
    ("pydicom", PYDICOM_TEST_FILES),
    *([("pydicom-data", PYDICOM_DATA)] if PYDICOM_DATA is not None else []),
]


def corpus_files() -> list[tuple[str, Path]]:
    """(id, path) for every file of the corpus, the id being 'root/relative/path'."""
    found = []
    for label, root in CORPUS_ROOTS:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file():
                found.append((f"{label}/{path.relative_to(root).as_posix()}", path))
    return found


def wg04(group: str, name: str) -> Path:
    """A WG04 file, e.g. wg04("REF", "CT1_UNC")."""
    return SHARED_DICOM / "wg04" / group / name
