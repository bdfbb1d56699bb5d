"""The file meta group packed by medviewer.dicom.file_meta against pydicom's own writer."""

from __future__ import annotations

from io import BytesIO

import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_file_meta_info

from medviewer.dicom import file_meta

VALUES = {
    file_meta.MEDIA_STORAGE_SOP_CLASS_UID: "1.2.840.10008.5.1.4.1.1.2",
    file_meta.MEDIA_STORAGE_SOP_INSTANCE_UID: "1.2.826.0.1.3680043.8.498.1234567",  # odd length
    file_meta.TRANSFER_SYNTAX_UID: "1.2.840.10008.1.2.1",
    file_meta.IMPLEMENTATION_CLASS_UID: "1.2.826.0.1.3680043.9.3811.3.0.0",
    file_meta.IMPLEMENTATION_VERSION_NAME: "PYNETDICOM_300",
    file_meta.SOURCE_APPLICATION_ENTITY_TITLE: "ORTHANC",  # odd length: padded with a space
}
KEYWORDS = {file_meta.MEDIA_STORAGE_SOP_CLASS_UID: "MediaStorageSOPClassUID",
            file_meta.MEDIA_STORAGE_SOP_INSTANCE_UID: "MediaStorageSOPInstanceUID",
            file_meta.TRANSFER_SYNTAX_UID: "TransferSyntaxUID",
            file_meta.IMPLEMENTATION_CLASS_UID: "ImplementationClassUID",
            file_meta.IMPLEMENTATION_VERSION_NAME: "ImplementationVersionName",
            file_meta.SOURCE_APPLICATION_ENTITY_TITLE: "SourceApplicationEntityTitle"}


def pydicom_bytes(values: dict[int, str]) -> bytes:
    meta = FileMetaDataset()
    for tag, value in values.items():
        setattr(meta, KEYWORDS[tag], value)
    buffer = BytesIO()
    out = DicomFileLike(buffer)
    out.is_little_endian, out.is_implicit_VR = True, False
    write_file_meta_info(out, meta, enforce_standard=True)
    return buffer.getvalue()


@pytest.mark.parametrize("left_out", [None, file_meta.SOURCE_APPLICATION_ENTITY_TITLE])
def test_the_same_bytes_as_pydicoms_writer(left_out):
    values = {tag: value for tag, value in VALUES.items() if tag != left_out}
    assert file_meta.encode_file_meta(values) == pydicom_bytes(values)


@pytest.mark.parametrize("change", [
    {file_meta.TRANSFER_SYNTAX_UID: ""},  # a required value missing
    {file_meta.SOURCE_APPLICATION_ENTITY_TITLE: "STATION-É"},  # not ASCII
    {file_meta.MEDIA_STORAGE_SOP_INSTANCE_UID: "1." * 40},  # longer than a UID may be
    {0x00020100: "1.2.3"},  # Private Information Creator UID: not written here
])
def test_what_it_cannot_pack_is_left_to_pydicom(change):
    assert file_meta.encode_file_meta({**VALUES, **change}) is None
