"""Data sources, patient keys, patient-level stratified splits, preprocessing, augmentation."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medviewer.dicom.reader import open_instance
from medviewer.training import data

PYDICOM_FILES = Path(__file__).resolve().parents[2] / ".venv/lib/python3.11/site-packages" \
    "/pydicom/data/test_files"


@pytest.fixture(scope="module")
def kermany_train(shared_data) -> data.LabelledSet:
    return data.from_folder(shared_data / "xray/kermany224/train")


@pytest.mark.parametrize("name, key", [
    ("person1234_bacteria_5678.jpeg", "PERSON1234"),
    ("person1234_virus_99.jpeg", "PERSON1234"),
    ("IM-0001-0001.jpeg", "IM-0001"),
    ("IM-0001-0002.jpeg", "IM-0001"),
    ("NORMAL2-IM-0012-0001.jpeg", "NORMAL2-IM-0012"),
    ("patient_17_view2.png", "PATIENT_17"),
    ("scan.png", None),
])
def test_patient_key_from_file_names(name, key):
    assert data.patient_from_name(name) == key


def test_normal2_and_plain_im_names_are_different_patients():
    assert data.patient_from_name("NORMAL2-IM-0001-0001.jpeg") != \
        data.patient_from_name("IM-0001-0001.jpeg")


def test_kermany_folder_has_patients_and_two_classes(kermany_train):
    assert kermany_train.class_names == ["NORMAL", "PNEUMONIA"]
    assert kermany_train.class_counts() == {"NORMAL": 1341, "PNEUMONIA": 3875}
    assert all(r.patient for r in kermany_train.records)
    patients = {r.patient for r in kermany_train.records}
    # Many patients have several images: the key groups them.
    assert 2000 < len(patients) < len(kermany_train.records)


def test_split_by_patient_is_stratified_seeded_and_leak_free(kermany_train):
    records = kermany_train.records
    split = data.split_records(records, 0.15, 0.15, seed=3)
    assert split.by == "patient"
    data.check_no_leakage(records, split)
    all_indices = split.train + split.val + split.test
    assert sorted(all_indices) == list(range(len(records)))
    patients = {name: {records[i].patient for i in split.indices(name)}
                for name in data.SPLIT_NAMES}
    assert not patients["train"] & patients["val"]
    assert not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]
    overall = sum(r.label for r in records) / len(records)
    for name, fraction in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
        indices = split.indices(name)
        assert abs(len(indices) / len(records) - fraction) < 0.01
        positive_rate = sum(records[i].label for i in indices) / len(indices)
        assert abs(positive_rate - overall) < 0.02
    again = data.split_records(records, 0.15, 0.15, seed=3)
    assert (again.train, again.val, again.test) == (split.train, split.val, split.test)
    other = data.split_records(records, 0.15, 0.15, seed=4)
    assert other.val != split.val


def test_split_by_image_when_no_patient_is_known():
    records = [data.ImageRecord(f"/x/{i}.png", i % 2) for i in range(40)]
    split = data.split_records(records, 0.25, 0.25, seed=0)
    assert split.by == "image"
    assert len(split.val) == len(split.test) == 10
    assert Counter(records[i].label for i in split.val) == {0: 5, 1: 5}
    data.check_no_leakage(records, split)


def test_leak_check_catches_a_patient_in_two_splits():
    records = [data.ImageRecord("/a1.png", 0, "P1"), data.ImageRecord("/a2.png", 0, "P1"),
               data.ImageRecord("/b.png", 1, "P2")]
    leaky = data.Split(train=[0, 2], val=[1], test=[], by="patient", seed=0)
    with pytest.raises(AssertionError, match="P1"):
        data.check_no_leakage(records, leaky)


def test_split_refuses_fractions_that_leave_no_training_data():
    records = [data.ImageRecord(f"/x/{i}.png", i % 2) for i in range(10)]
    with pytest.raises(data.DataError):
        data.split_records(records, 0.6, 0.5, seed=0)


def test_csv_source_resolves_relative_paths_and_names_classes(tmp_path, shared_data):
    source = sorted((shared_data / "xray/kermany224/train/NORMAL").iterdir())[:3] + \
        sorted((shared_data / "xray/kermany224/train/PNEUMONIA").iterdir())[:3]
    for path in source:
        shutil.copy(path, tmp_path / path.name)
    lines = ["path,label"] + [f"{p.name},{p.parent.name.lower()}" for p in source]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    labelled = data.resolve_source(str(tmp_path / "labels.csv"))
    assert labelled.class_names == ["normal", "pneumonia"]
    assert labelled.class_counts() == {"normal": 3, "pneumonia": 3}
    assert all(Path(r.path).is_file() for r in labelled.records)
    assert all(r.patient for r in labelled.records)


def test_csv_naming_a_missing_file_is_one_clear_error(tmp_path):
    (tmp_path / "labels.csv").write_text("path,label\nmissing.png,a\n")
    with pytest.raises(data.DataError, match="missing.png"):
        data.from_csv(tmp_path / "labels.csv")


def test_folder_with_one_class_is_refused(tmp_path, shared_data):
    (tmp_path / "only").mkdir()
    first = next((shared_data / "xray/kermany224/train/NORMAL").iterdir())
    shutil.copy(first, tmp_path / "only" / first.name)
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataError, match="only one class"):
        data.from_folder(tmp_path)


def test_unknown_source_and_label_set_errors_are_user_errors(tmp_path):
    with pytest.raises(data.DataError, match="neither a folder"):
        data.resolve_source(str(tmp_path / "nothing.txt"))


def test_dicom_folder_uses_patient_id_and_decodes_grey_and_colour(tmp_path):
    wanted = {"a": ["CT_small.dcm", "MR_small.dcm"], "b": ["SC_rgb_dcmtk_+eb+cr.dcm",
                                                         "JPEG2000.dcm"]}
    for label, names in wanted.items():
        (tmp_path / label).mkdir()
        for name in names:
            shutil.copy(PYDICOM_FILES / name, tmp_path / label / name)
    labelled = data.from_folder(tmp_path)
    by_name = {Path(r.path).name: r for r in labelled.records}
    assert by_name["CT_small.dcm"].patient == "1CT1"
    assert by_name["MR_small.dcm"].patient == "4MR1"
    for record in labelled.records:
        image = data.preprocess_image(record.path, 32)
        assert image.shape == (32, 32) and image.dtype == np.float32
        assert 0.0 <= image.min() <= image.max() <= 1.0
    colour_path = by_name["SC_rgb_dcmtk_+eb+cr.dcm"].path
    colour = open_instance(colour_path).display_frame(0)
    assert colour.ndim == 3
    # Colour becomes grey by BT.601 luma before resizing.
    luma = (colour.astype(np.float32) / 255) @ np.array([0.299, 0.587, 0.114], np.float32)
    expected = np.asarray(Image.fromarray(luma).resize((32, 32), Image.Resampling.BILINEAR))
    np.testing.assert_allclose(data.preprocess_image(colour_path, 32), expected, atol=1e-6)


def test_preprocess_is_display_frame_over_255_resized_with_pil(shared_data):
    path = next((shared_data / "xray/kermany224/train/NORMAL").iterdir())
    unit = open_instance(path).display_frame(0).astype(np.float32) / 255
    expected = np.asarray(Image.fromarray(unit).resize((96, 96), Image.Resampling.BILINEAR))
    np.testing.assert_allclose(data.preprocess_image(path, 96), expected, atol=1e-6)


def test_preload_caches_the_decoded_set(shared_data):
    records = [data.ImageRecord(str(p), 0) for p in
               sorted((shared_data / "xray/kermany224/test/NORMAL").iterdir())[:5]]
    from medviewer.jobs import run_to_end

    first = run_to_end(data.preload_images(records, 40))
    events = list(_events(data.preload_images(records, 40)))
    assert events[-1].message == "images loaded from cache"
    second = run_to_end(data.preload_images(records, 40))
    assert first.shape == (5, 1, 40, 40) and first.dtype == torch.float32
    assert torch.equal(first, second)


def _events(job):
    while True:
        try:
            yield next(job)
        except StopIteration:
            return


def test_augmentation_keeps_range_is_seeded_and_never_flips_by_default():
    images = torch.rand(8, 1, 32, 32)
    config = data.AugmentConfig()
    a = data.augment_batch(images, config, torch.Generator().manual_seed(1))
    b = data.augment_batch(images, config, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert a.shape == images.shape and a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a, images)
    assert not config.hflip
    # Pure geometry with the identity transform leaves images unchanged.
    identity = data.AugmentConfig(rotation_deg=0, scale=0, translate=0, brightness=0,
                                  contrast=0)
    same = data.augment_batch(images, identity, torch.Generator().manual_seed(1))
    assert torch.allclose(same, images, atol=1e-5)
    off = data.AugmentConfig(enabled=False)
    assert data.augment_batch(images, off, torch.Generator()) is images


def test_label_store_is_a_data_source(shared_data):
    from medviewer.labels.identity import resolve_image
    from medviewer.labels.store import LabelStore

    normal = sorted((shared_data / "xray/kermany224/train/NORMAL").iterdir())[:4]
    pneumonia = sorted((shared_data / "xray/kermany224/train/PNEUMONIA").iterdir())[:4]
    with LabelStore(reader="alice") as store:
        store.create_label_set("chest", ["normal", "pneumonia"])
        for path in normal:
            store.set_label("chest", resolve_image(path), "normal")
        for path in pneumonia:
            store.set_label("chest", resolve_image(path), "pneumonia")
    labelled = data.resolve_source("labelset:chest")
    assert labelled.class_names == ["normal", "pneumonia"]
    assert labelled.class_counts() == {"normal": 4, "pneumonia": 4}
    by_name = {Path(r.path).name: r for r in labelled.records}
    assert by_name[pneumonia[0].name].patient == data.patient_from_name(pneumonia[0])
    with pytest.raises(Exception, match="nope"):
        data.resolve_source("labelset:nope")


def test_gamma_augmentation_is_monotonic_per_image():
    images = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    config = data.AugmentConfig(rotation_deg=0, scale=0, translate=0, brightness=0, contrast=0,
                                gamma=0.5)
    out = data.augment_batch(images, config, torch.Generator().manual_seed(3))
    assert out.min() >= 0 and out.max() <= 1 and not torch.allclose(out, images, atol=1e-3)
    # Ordered by the input, the output never decreases. (Comparing argsorts failed now and
    # then: two close inputs can round to one output, and argsort orders ties arbitrarily.)
    for before, after in zip(images.flatten(1), out.flatten(1)):
        assert (after[before.argsort()].diff() >= 0).all()
