"""Labels for training: majority or one reader's decisions, with the image's identity."""

from __future__ import annotations

import pytest

from medviewer.labels.consensus import training_labels
from medviewer.labels.errors import InvalidLabelError
from medviewer.labels.store import ImageRef
from tests.labels.helpers import image


@pytest.fixture
def voted(store, pneumonia):
    """img  alice      bob        carol      ai
       1    pneumonia  pneumonia  normal     normal     -> majority pneumonia (2 of 3)
       2    normal     pneumonia  -          pneumonia  -> tie 1-1: left out
       3    normal     -          -          -          -> alice alone: normal
       4    (a plain image keyed by content hash, bob normal)
    """
    store.set_label("pneumonia", image(1, path="/d/1.dcm", patient_id="P1"), "pneumonia")
    store.set_label("pneumonia", image(1), "pneumonia", reader="bob")
    store.set_label("pneumonia", image(1), "normal", reader="carol")
    store.set_label("pneumonia", image(1), "normal", reader="ai")
    store.set_label("pneumonia", image(2, path="/d/2.dcm"), "normal")
    store.set_label("pneumonia", image(2), "pneumonia", reader="bob")
    store.set_label("pneumonia", image(2), "pneumonia", reader="ai")
    store.set_label("pneumonia", image(3, path="/d/3.dcm"), "normal")
    store.set_label("pneumonia", ImageRef.from_hash("ab" * 32, path="/d/x.png"), "normal",
                    reader="bob")
    return store


def test_majority_of_human_readers(voted):
    result = training_labels(voted, "pneumonia")
    assert (result.classes, result.multi_label, result.rule) == (
        ("normal", "pneumonia"), False, "majority")
    by_key = {item.image_key: item for item in result.items}
    first = by_key[image(1).key]
    assert first.labels == ("pneumonia",) and first.readers == ("alice", "bob", "carol")
    assert (first.path, first.sop_instance_uid, first.patient_id) == (
        "/d/1.dcm", image(1).key, "P1")
    assert image(2).key not in by_key  # the AI's vote does not break the tie
    assert by_key[image(3).key].labels == ("normal",)
    plain = by_key["sha256:" + "ab" * 32]
    assert (plain.content_hash, plain.sop_instance_uid) == ("ab" * 32, None)
    assert result.excluded == {"no majority": 1}


def test_minimum_readers_and_a_single_readers_labels(voted):
    strict = training_labels(voted, "pneumonia", min_readers=2)
    assert [i.image_key for i in strict.items] == [image(1).key]
    assert strict.excluded == {"too few readers": 2, "no majority": 1}
    bob = training_labels(voted, "pneumonia", "reader:bob")
    assert {i.image_key: i.labels for i in bob.items} == {
        image(1).key: ("pneumonia",), image(2).key: ("pneumonia",),
        "sha256:" + "ab" * 32: ("normal",)}
    ai = training_labels(voted, "pneumonia", "reader:ai")
    assert len(ai.items) == 2
    with pytest.raises(InvalidLabelError, match="consensus rule"):
        training_labels(voted, "pneumonia", "vote")


def test_multi_label_majority_per_class(store, findings):
    store.set_label("findings", image(1), ["effusion", "nodule"])
    store.set_label("findings", image(1), ["effusion"], reader="bob")
    store.set_label("findings", image(1), ["effusion", "nodule"], reader="carol")
    store.set_label("findings", image(2), ["nodule"])
    store.set_label("findings", image(2), ["effusion"], reader="bob")
    result = training_labels(store, "findings")
    # image 1: effusion 3/3, nodule 2/3 -> both; image 2: 1/2 each -> no majority.
    assert [(i.image_key, i.labels) for i in result.items] == [
        (image(1).key, ("effusion", "nodule"))]
    assert result.excluded == {"no majority": 1}
