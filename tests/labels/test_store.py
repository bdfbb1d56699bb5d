"""The label store: durable per-action writes, per-reader labels, history and undo."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from medviewer.labels.errors import (
    DamagedStoreError,
    InvalidLabelError,
    LabelError,
    NewerStoreError,
    NotALabelStoreError,
    UndoConflictError,
    UnknownLabelSetError,
)
from medviewer.labels.schema import SCHEMA_VERSION
from medviewer.labels.store import ImageRef, LabelEntry, LabelStore
from medviewer.settings import Settings, save_settings
from tests.labels.helpers import image


def test_a_committed_label_is_in_the_file_for_any_other_connection(store, store_path,
                                                                   pneumonia):
    label = store.set_label("pneumonia", image(1, path="/data/a.dcm"), "pneumonia",
                            note="left lower lobe")
    assert label.classes == ("pneumonia",) and label.reader == "alice"
    assert label.source == "manual" and label.note == "left lower lobe"
    # A second, independent connection (another process would see the same) reads it back.
    raw = sqlite3.connect(store_path)
    try:
        rows = raw.execute("SELECT image_key, reader, classes, note FROM image_labels").fetchall()
    finally:
        raw.close()
    assert rows == [(image(1).key, "alice", '["pneumonia"]', "left lower lobe")]


def test_the_store_runs_in_wal_mode_with_full_sync(store, store_path):
    conn = store._db.sqlite
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.schema_version == SCHEMA_VERSION
    assert store.check(full=True) == []


def test_store_defaults_to_the_user_data_dir_and_the_settings_reader(isolated_home):
    save_settings(Settings(reader_name="dr carol"))
    with LabelStore() as default:
        assert default.path == isolated_home / "data" / "labels.sqlite"
        assert default.reader == "dr carol"
        default.create_label_set("ok", ["yes", "no"])
        assert default.set_label("ok", image(1), "yes").reader == "dr carol"


def test_single_label_set_replaces_and_rejects_several_classes(store, pneumonia):
    store.set_label("pneumonia", image(1), "normal")
    store.set_label("pneumonia", image(1), ["pneumonia"])
    assert [lab.classes for lab in store.current_labels("pneumonia")] == [("pneumonia",)]
    with pytest.raises(InvalidLabelError, match="single-label"):
        store.set_label("pneumonia", image(1), ["normal", "pneumonia"])
    with pytest.raises(InvalidLabelError, match="'cat' is not in label set 'pneumonia'"):
        store.set_label("pneumonia", image(1), "cat")
    with pytest.raises(UnknownLabelSetError, match="label sets: pneumonia"):
        store.set_label("nope", image(1), "normal")
    # A failed action writes nothing at all: not even the image row or a history entry.
    assert store.label_for("pneumonia", image(1).key).classes == ("pneumonia",)
    assert len(store.history("pneumonia")) == 2


def test_a_rejected_action_leaves_no_trace(store, pneumonia):
    with pytest.raises(InvalidLabelError):
        store.set_label("pneumonia", image(7, path="/x.dcm"), "cat")
    assert store.images() == {}
    assert store.history() == []


def test_multi_label_toggles_classes_in_class_list_order(store, findings):
    img = image(1)
    assert store.toggle_class("findings", img, "nodule").classes == ("nodule",)
    assert store.toggle_class("findings", img, "effusion").classes == ("effusion", "nodule")
    assert store.toggle_class("findings", img, "nodule").classes == ("effusion",)
    assert store.toggle_class("findings", img, "effusion") is None
    assert store.current_labels("findings") == []
    assert store.set_label("findings", img, ["cardiomegaly", "effusion"]).classes == (
        "effusion", "cardiomegaly")


def test_single_label_toggle_replaces_the_class(store, pneumonia):
    store.toggle_class("pneumonia", image(1), "normal")
    assert store.toggle_class("pneumonia", image(1), "pneumonia").classes == ("pneumonia",)


def test_readers_keep_their_own_labels_on_the_same_image(store, store_path, pneumonia):
    store.set_label("pneumonia", image(1), "normal")
    with LabelStore(store_path, reader="bob") as bob:
        bob.set_label("pneumonia", image(1), "pneumonia")
        assert bob.label_for("pneumonia", image(1).key).classes == ("pneumonia",)
    labels = store.current_labels("pneumonia", [image(1).key])
    assert [(lab.reader, lab.classes) for lab in labels] == [("alice", ("normal",)),
                                                            ("bob", ("pneumonia",))]
    assert store.decisions("pneumonia") == {image(1).key: {"alice": ("normal",),
                                                           "bob": ("pneumonia",)}}
    assert [lab.reader for lab in store.current_labels("pneumonia", reader="bob")] == ["bob"]


def test_setting_the_same_label_again_writes_nothing(store, pneumonia):
    first = store.set_label("pneumonia", image(1), "normal")
    again = store.set_label("pneumonia", image(1), "normal")
    assert again.action_id == first.action_id
    assert len(store.history("pneumonia")) == 1


def test_history_records_who_changed_what_from_old_to_new(store, pneumonia):
    store.set_label("pneumonia", image(1), "normal")
    store.set_label("pneumonia", image(1), "pneumonia", source="ai_overridden",
                    ai_classes=["normal"])
    store.set_note("pneumonia", image(1), "subtle")
    store.clear_label("pneumonia", image(1))
    entries = store.history("pneumonia", image(1).key)
    assert [e.kind for e in entries] == ["clear_label", "set_note", "set_label", "set_label"]
    assert all(e.actor == "alice" and e.reader == "alice" for e in entries)
    cleared, noted, overridden, first = entries
    assert first.old is None and first.new["classes"] == ["normal"]
    assert overridden.old["classes"] == ["normal"]
    assert overridden.new["classes"] == ["pneumonia"]
    assert overridden.new["source"] == "ai_overridden"
    assert overridden.new["ai_classes"] == ["normal"]
    assert noted.new["note"] == "subtle" and cleared.new is None
    assert store.label_for("pneumonia", image(1).key) is None


def test_history_in_label_sets_skips_measurements(store, pneumonia):
    # The label panel starts on the reader's most recent label set: a measurement made
    # since (in no label set) must not hide it.
    store.set_label("pneumonia", image(1), "normal")
    store.add_measurement(image(1), "distance", [(0, 0), (3, 4)], values={"length_px": 5.0})
    newest = store.history(reader="alice", limit=1)
    assert newest[0].target == "measurement" and newest[0].label_set is None
    in_sets = store.history(reader="alice", limit=1, in_label_set=True)
    assert [(e.target, e.label_set) for e in in_sets] == [("image_label", "pneumonia")]


def test_history_tables_are_append_only(store, store_path, pneumonia):
    store.set_label("pneumonia", image(1), "normal")
    raw = sqlite3.connect(store_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("UPDATE changes SET new = NULL")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("DELETE FROM actions")
    finally:
        raw.close()


def test_undo_walks_back_the_readers_actions(store, pneumonia, findings):
    store.set_label("pneumonia", image(1), "normal")
    store.set_label("pneumonia", image(1), "pneumonia")
    store.toggle_class("findings", image(1), "nodule")
    store.clear_label("pneumonia", image(1))

    assert store.undo().kind == "clear_label"
    assert store.label_for("pneumonia", image(1).key).classes == ("pneumonia",)
    # Undo within one label set skips the other set's action.
    result = store.undo(label_set="pneumonia")
    assert (result.kind, result.label_set, result.image_keys) == (
        "set_label", "pneumonia", (image(1).key,))
    assert store.label_for("pneumonia", image(1).key).classes == ("normal",)
    assert store.label_for("findings", image(1).key).classes == ("nodule",)
    store.undo()
    store.undo()
    assert store.current_labels("pneumonia") == [] and store.current_labels("findings") == []
    assert store.undo() is None
    # Undo is itself history: each undo appended its own changes.
    assert sum(e.kind == "undo" for e in store.history()) == 4


def test_undo_restores_the_exact_earlier_label(store, pneumonia):
    first = store.set_label("pneumonia", image(1), "normal", note="first look")
    store.set_label("pneumonia", image(1), "pneumonia")
    store.undo()
    restored = store.label_for("pneumonia", image(1).key)
    assert restored == first


def test_undo_is_per_reader(store, store_path, pneumonia):
    store.set_label("pneumonia", image(1), "normal")
    with LabelStore(store_path, reader="bob") as bob:
        bob.set_label("pneumonia", image(2), "pneumonia")
        assert bob.undo().kind == "set_label"
        assert bob.undo() is None
    assert store.label_for("pneumonia", image(1).key).classes == ("normal",)


def test_undo_refuses_to_overwrite_someone_elses_later_change(store, store_path, pneumonia):
    store.set_label("pneumonia", image(1), "normal")
    with LabelStore(store_path, reader="bob") as bob:
        # e.g. bob imports a corrected label for alice's reading
        bob.set_label("pneumonia", image(1), "pneumonia", reader="alice")
    with pytest.raises(UndoConflictError, match="changed since"):
        store.undo()
    assert store.label_for("pneumonia", image(1).key).classes == ("pneumonia",)
    assert not any(e.kind == "undo" for e in store.history())


def test_redo_reapplies_undos_in_reverse_and_is_itself_undoable(store, pneumonia, findings):
    store.set_label("pneumonia", image(1), "normal")
    store.set_label("pneumonia", image(1), "pneumonia", note="consolidation")
    store.toggle_class("findings", image(1), "nodule")
    assert store.redo() is None  # nothing undone yet
    store.undo()
    store.undo()
    assert store.label_for("pneumonia", image(1).key).classes == ("normal",)
    assert store.current_labels("findings") == []

    redone = store.redo()  # the later undo first: back to "pneumonia"
    assert (redone.kind, redone.image_keys) == ("undo", (image(1).key,))
    again = store.label_for("pneumonia", image(1).key)
    assert again.classes == ("pneumonia",) and again.note == "consolidation"
    store.redo()
    assert store.label_for("findings", image(1).key).classes == ("nodule",)
    assert store.redo() is None

    # A redo is an action like any other: undo takes it back.
    assert store.undo().kind == "redo"
    assert store.current_labels("findings") == []
    assert store.redo().kind == "undo"
    assert store.label_for("findings", image(1).key).classes == ("nodule",)
    kinds = [e.kind for e in reversed(store.history())]
    assert kinds.count("redo") == 3 and kinds.count("undo") == 3


def test_a_new_edit_ends_the_redo_chain(store, pneumonia):
    store.set_label("pneumonia", image(1), "normal")
    store.set_label("pneumonia", image(2), "normal")
    store.undo()
    store.set_label("pneumonia", image(3), "pneumonia")
    assert store.redo() is None
    assert store.current_labels("pneumonia", [image(2).key]) == []


def test_redo_is_per_reader_and_refuses_to_overwrite_a_later_change(store, store_path,
                                                                    pneumonia):
    store.set_label("pneumonia", image(1), "normal")
    store.undo()
    with LabelStore(store_path, reader="bob") as bob:
        assert bob.redo() is None  # alice's undo is not bob's to redo
        bob.set_label("pneumonia", image(1), "pneumonia", reader="alice")
    with pytest.raises(UndoConflictError, match="Cannot redo the last undo.*nothing was redone"):
        store.redo()
    assert store.label_for("pneumonia", image(1).key).classes == ("pneumonia",)


def test_current_labels_for_many_images_in_one_call(store, pneumonia):
    keys = [image(n).key for n in range(1200)]
    store.import_labels("pneumonia", [
        LabelEntry(image(n), "alice", ("normal" if n % 3 else "pneumonia",))
        for n in range(1200)])
    wanted = keys[100:1100] + ["not-labelled"]
    labels = store.current_labels("pneumonia", wanted)
    assert [lab.image_key for lab in labels] == sorted(keys[100:1100])
    assert all(lab.classes == (("normal",) if int(lab.image_key.rsplit(".", 1)[1]) % 3
                               else ("pneumonia",)) for lab in labels)


def test_names_sources_and_notes_are_checked(store, pneumonia):
    with pytest.raises(InvalidLabelError, match="source"):
        store.set_label("pneumonia", image(1), "normal", source="guess")
    with pytest.raises(InvalidLabelError, match="reader name cannot be empty"):
        store.set_label("pneumonia", image(1), "normal", reader="  ")
    with pytest.raises(InvalidLabelError, match="already exists"):
        store.create_label_set("pneumonia", ["a"])
    with pytest.raises(InvalidLabelError, match="listed twice"):
        store.create_label_set("dup", ["a", "a"])
    with pytest.raises(InvalidLabelError, match="no label"):
        store.set_note("pneumonia", image(1), "x")
    assert store.add_classes("pneumonia", ["normal", "other"]).classes == (
        "normal", "pneumonia", "other")


def test_image_hints_are_kept_and_updated(store, pneumonia):
    store.set_label("pneumonia", image(1, path="/old/a.dcm", patient_id="P1"), "normal")
    store.set_label("pneumonia", image(1, path="/new/a.dcm"), "pneumonia")
    known = store.images()[image(1).key]
    assert (known.path, known.patient_id) == ("/new/a.dcm", "P1")


def test_image_refs_from_real_files(shared_data):
    from medviewer.dicom.images import content_hash
    from medviewer.dicom.reader import open_instance
    from medviewer.labels.identity import resolve_image

    dicom = shared_data / "dicom" / "wg04" / "REF" / "RG2_UNC"
    ref = resolve_image(dicom)
    header = open_instance(dicom).header
    assert ref.key == header.SOPInstanceUID == ref.sop_instance_uid
    assert ref.patient_id == header.PatientID and ref.content_hash is None
    assert (ref.width, ref.height) == (header.Columns, header.Rows)
    jpeg = next((shared_data / "xray" / "kermany224" / "test" / "NORMAL").glob("*.jpeg"))
    plain = resolve_image(jpeg)
    assert plain.key == "sha256:" + content_hash(jpeg)
    assert plain.content_hash == content_hash(jpeg) and plain.sop_instance_uid is None
    assert (plain.width, plain.height) == (224, 224) and plain.patient_id is None
    assert ImageRef.from_instance(open_instance(jpeg)) == plain


def test_a_file_that_is_not_a_label_store_is_refused(tmp_path):
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE patients (id)")
    conn.commit()
    conn.close()
    with pytest.raises(NotALabelStoreError, match="other tables"):
        LabelStore(other, reader="alice")
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, just some text that is long enough")
    with pytest.raises(DamagedStoreError, match="recover"):
        LabelStore(text, reader="alice")
    with pytest.raises(NotALabelStoreError, match="folder"):
        LabelStore(tmp_path, reader="alice")


def test_a_store_from_a_newer_version_is_refused(store_path):
    LabelStore(store_path, reader="alice").close()
    conn = sqlite3.connect(store_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(NewerStoreError, match="newer MedViewer"):
        LabelStore(store_path, reader="alice")


def test_errors_are_user_errors_with_one_sentence(store, pneumonia):
    with pytest.raises(LabelError) as caught:
        store.set_label("pneumonia", image(1), "cat")
    message = str(caught.value)
    assert message.endswith(".") and "\n" not in message


def test_a_closed_store_says_so(store_path: Path):
    opened = LabelStore(store_path, reader="alice")
    opened.close()
    with pytest.raises(LabelError, match="closed"):
        opened.label_sets()
