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


def write_dicom(path: Path, pixels, *, transfer_syntax: str | None = None, **attributes) -> Path:
    """A minimal Secondary Capture file holding ``pixels`` (frames first if 3-D grey).

    Keyword arguments become data elements (``RescaleSlope=2``...); a compressed
    ``transfer_syntax`` is encoded with pydicom's own encoders.
    """
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    array = np.asarray(pixels)
    colour = attributes.get("SamplesPerPixel", 1) == 3 or (
        array.ndim >= 3 and array.shape[-1] == 3 and "NumberOfFrames" not in attributes
        and attributes.get("PhotometricInterpretation", "RGB") != "MONOCHROME2")
    frames = array.shape[0] if array.ndim == (4 if colour else 3) else 1
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    ds.PatientID = "TEST"
    ds.Rows, ds.Columns = array.shape[-3:-1] if colour else array.shape[-2:]
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = "RGB" if colour else "MONOCHROME2"
    if colour:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = array.dtype.itemsize * 8
    ds.BitsStored = ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if array.dtype.kind == "i" else 0
    if frames > 1:
        ds.NumberOfFrames = frames
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.PixelData = np.ascontiguousarray(array).tobytes()
    if transfer_syntax is not None and transfer_syntax != ExplicitVRLittleEndian:
        ds.compress(transfer_syntax, array, encoding_plugin="pylibjpeg"
                    if "1.2.840.10008.1.2.4.9" in transfer_syntax else None)
    ds.save_as(path, enforce_file_format=True)
    return path
