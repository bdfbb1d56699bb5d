"""Key images: flags per study in a private JSON file, written atomically, surviving a damaged
file and shared between two windows."""

from __future__ import annotations

import json
import os
import stat

import pytest

from medviewer.app.key_images import (
    NO_STUDY_UID_PREFIX,
    KeyImagesError,
    KeyImageStore,
    default_key_images_path,
    key_image_ref,
)
from medviewer.dicom.reader import open_instance
from medviewer.paths import SAMPLE_STUDY_DIR, user_data_dir

STUDY = "1.2.826.0.1.3680043.8.498.1"
IMAGE = "1.2.826.0.1.3680043.8.498.1.1"


def test_flags_are_kept_per_study_in_order_and_survive_a_new_store():
    store = KeyImageStore()
    assert store.path == user_data_dir() / "key_images.json"
    store.flag(STUDY, IMAGE, reader="dr.lee", note="consolidation")
    store.flag(STUDY, "sha256:" + "a" * 64, frame=2)
    store.flag("other-study", IMAGE)

    again = KeyImageStore()
    flagged = again.for_study(STUDY)
    assert [(k.image, k.frame) for k in flagged] == [(IMAGE, 0), ("sha256:" + "a" * 64, 2)]
    assert flagged[0].reader == "dr.lee" and flagged[0].note == "consolidation"
    assert flagged[0].flagged_at.endswith("+00:00")
    assert again.studies() == sorted(["other-study", STUDY])
    assert again.is_flagged(STUDY, IMAGE) and not again.is_flagged(STUDY, IMAGE, frame=1)


def test_flagging_again_updates_the_note_but_keeps_the_time_and_one_entry():
    store = KeyImageStore()
    first = store.flag(STUDY, IMAGE, note="a")
    second = store.flag(STUDY, IMAGE, note="b")
    assert second.flagged_at == first.flagged_at
    assert [k.note for k in store.for_study(STUDY)] == ["b"]


def test_unflag_and_toggle():
    store = KeyImageStore()
    assert store.toggle(STUDY, IMAGE, reader="dr.lee") is True
    assert store.is_flagged(STUDY, IMAGE)
    assert store.toggle(STUDY, IMAGE) is False
    assert store.for_study(STUDY) == [] and store.studies() == []
    assert store.unflag(STUDY, IMAGE) is False
    data = json.loads(store.path.read_text())
    assert data == {"format": 1, "studies": {}}


def test_the_file_is_owner_only_and_no_temporary_file_is_left():
    store = KeyImageStore()
    store.flag(STUDY, IMAGE)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert [p.name for p in store.path.parent.iterdir() if p.name.startswith(".")] == []


def test_a_failed_write_leaves_the_previous_file_whole(monkeypatch):
    store = KeyImageStore()
    store.flag(STUDY, IMAGE)
    before = store.path.read_bytes()

    def disk_full(_fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(KeyImagesError, match="could not be saved in .*No space left"):
        store.flag(STUDY, "another-image")
    monkeypatch.undo()
    assert store.path.read_bytes() == before
    assert [p.name for p in store.path.parent.iterdir() if p.name.startswith(".")] == []


def test_two_windows_do_not_undo_each_others_flags():
    first, second = KeyImageStore(), KeyImageStore()
    first.flag(STUDY, "image-1")
    second.flag(STUDY, "image-2")
    first.unflag(STUDY, "image-1")
    assert [k.image for k in KeyImageStore().for_study(STUDY)] == ["image-2"]


@pytest.mark.parametrize("content", ["{broken", "[]", '{"format": 1, "studies": {"s": 3}}',
                                     '{"format": 1, "studies": {"s": [{"frame": 0}]}}',
                                     '{"format": 1, "studies": {"s": [{"image": "x", '
                                     '"frame": -1}]}}'])
def test_a_damaged_file_is_set_aside_with_a_notice_and_the_store_starts_empty(content):
    path = default_key_images_path()
    path.write_text(content, encoding="utf-8")
    store = KeyImageStore()
    assert store.for_study("s") == []
    assert len(store.notices) == 1 and str(path) in store.notices[0]
    kept = [p for p in path.parent.iterdir() if p.name.startswith("key_images.damaged-")]
    assert len(kept) == 1 and kept[0].read_text() == content
    assert not path.exists()
    store.flag("s", "x")
    assert KeyImageStore().is_flagged("s", "x")


def test_a_file_from_a_newer_version_is_refused_and_left_alone():
    path = default_key_images_path()
    path.write_text('{"format": 7, "studies": {}}', encoding="utf-8")
    with pytest.raises(KeyImagesError, match="newer MedViewer"):
        KeyImageStore().flag(STUDY, IMAGE)
    assert path.read_text() == '{"format": 7, "studies": {}}'


@pytest.mark.parametrize(("study", "image", "frame"), [
    ("", IMAGE, 0), (STUDY, "  ", 0), (STUDY, IMAGE, -1), (STUDY, IMAGE, True)])
def test_bad_keys_are_refused_with_a_sentence(study, image, frame):
    with pytest.raises(KeyImagesError, match=r"^A key image"):
        KeyImageStore().flag(study, image, frame)
    assert not default_key_images_path().exists()


def test_key_image_ref_of_a_dicom_file_and_of_a_plain_image(tmp_path):
    instance = open_instance(sorted(SAMPLE_STUDY_DIR.glob("*.dcm"))[0])
    study, image = key_image_ref(instance)
    assert study == str(instance.header.StudyInstanceUID)
    assert image == instance.sop_instance_uid

    from PIL import Image

    png = tmp_path / "chest.png"
    Image.new("L", (8, 8), 100).save(png)
    plain = open_instance(png)
    study, image = key_image_ref(plain)
    assert study == str(plain.header.StudyInstanceUID)  # derived from the content
    assert image == "sha256:" + plain.content_hash

    # A DICOM file without a Study Instance UID: its folder stands for the study.
    import pydicom

    dataset = pydicom.dcmread(sorted(SAMPLE_STUDY_DIR.glob("*.dcm"))[0])
    del dataset.StudyInstanceUID
    no_study = tmp_path / "no-study" / "image.dcm"
    no_study.parent.mkdir()
    dataset.save_as(no_study)
    study, image = key_image_ref(open_instance(no_study))
    assert study == NO_STUDY_UID_PREFIX + str(no_study.parent.resolve())
    assert image == str(dataset.SOPInstanceUID)
