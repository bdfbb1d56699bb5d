"""A damaged store is detected at start-up and recovered: the damaged file is kept aside,
and every label SQLite can still read (or that the history records) comes back."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from medviewer.labels.errors import DamagedStoreError
from medviewer.labels.store import LabelEntry, LabelStore, Rectangle
from tests.labels.helpers import image

N_LABELS = 3000
PAGE_SIZE = 4096


def build_store(path: Path) -> dict[str, tuple[str, ...]]:
    """A store with N_LABELS labels (one import), a few manual actions and a region."""
    expected = {}
    with LabelStore(path, reader="alice") as store:
        store.create_label_set("pneumonia", ["normal", "pneumonia"])
        entries = []
        for n in range(N_LABELS):
            classes = ("pneumonia",) if n % 3 == 0 else ("normal",)
            entries.append(LabelEntry(image(n, path=f"/data/img-{n:05d}.dcm"), "alice",
                                      classes, note=f"row-{n:05d}"))
            expected[image(n).key] = classes
        store.import_labels("pneumonia", entries)
        store.set_label("pneumonia", image(5), "pneumonia", note="row-00005 changed")
        expected[image(5).key] = ("pneumonia",)
        store.add_region("pneumonia", image(5), "pneumonia", Rectangle(10, 20, 30, 40))
    # Closing the last connection checkpoints the WAL: everything is in the main file now.
    assert not Path(f"{path}-wal").exists()
    return expected


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, dict[str, tuple[str, ...]]]:
    path = tmp_path_factory.mktemp("template") / "labels.sqlite"
    return path, build_store(path)


def copy_of(template: tuple[Path, dict], folder: Path) -> tuple[Path, dict]:
    source, expected = template
    path = folder / "labels.sqlite"
    shutil.copyfile(source, path)
    return path, expected


def page_holding(path: Path, marker: bytes) -> int:
    data = path.read_bytes()
    offset = data.find(marker)
    assert offset > PAGE_SIZE, f"{marker!r} not found past the first page"
    return offset // PAGE_SIZE


def smash_page(path: Path, page_index: int) -> bytes:
    """Overwrite one whole page with a repeating junk pattern, as a bad sector would."""
    data = bytearray(path.read_bytes())
    start = page_index * PAGE_SIZE
    data[start:start + PAGE_SIZE] = (b"\xde\xad\xbe\xef" * (PAGE_SIZE // 4))
    path.write_bytes(bytes(data))
    return bytes(data)


def current(path: Path) -> dict[str, tuple[str, ...]]:
    with LabelStore(path, reader="alice") as store:
        assert store.check(full=True) == []
        return {lab.image_key: lab.classes for lab in store.current_labels("pneumonia")}


def test_a_damaged_label_page_is_detected_and_every_label_recovered(tmp_path, template):
    path, expected = copy_of(template, tmp_path)
    # The image_labels record of row 1500: its classes, source and note lie side by side.
    damaged_bytes = smash_page(path, page_holding(path, b"importedrow-01500"))

    with pytest.raises(DamagedStoreError) as caught:
        LabelStore(path, reader="alice")
    message = str(caught.value)
    assert "is damaged" in message and "medviewer labels recover" in message

    report = LabelStore.recover(path)
    # The damaged file is kept, byte for byte, beside the rebuilt one.
    assert report.damaged_copy.parent == tmp_path
    assert report.damaged_copy.name.startswith("labels.damaged-")
    assert report.damaged_copy.read_bytes() == damaged_bytes
    # Rows on the smashed page were unreadable, yet the history had their latest state.
    assert report.damaged_stretches["image_labels"] >= 1
    lost_rows = N_LABELS - report.labels_salvaged
    assert 0 < lost_rows < 100  # at most about one page of rows
    assert report.rebuilt_from_history["image_labels"] == lost_rows
    assert report.labels_restored == N_LABELS
    assert current(path) == expected
    with LabelStore(path, reader="alice") as store:
        assert len(store.regions("pneumonia")) == 1
        # The rebuilt store works as before: history, undo, new labels.
        assert store.undo().kind == "add_region"
        store.set_label("pneumonia", image(99999), "normal")
    assert "restored from the label history" in report.summary()


def test_damaged_history_loses_no_current_label(tmp_path, template):
    path, expected = copy_of(template, tmp_path)
    # A page of the history (changes) table: its JSON holds the note of row 2000.
    smash_page(path, page_holding(path, b'"note":"row-02000"'))
    with pytest.raises(DamagedStoreError):
        LabelStore(path, reader="alice")
    report = LabelStore.recover(path)
    assert report.rows_salvaged["image_labels"] == N_LABELS
    assert report.damaged_stretches["changes"] >= 1
    assert current(path) == expected


def test_a_file_with_a_destroyed_header_is_set_aside_and_replaced(tmp_path, template):
    path, _ = copy_of(template, tmp_path)
    original = bytearray(path.read_bytes())
    original[:100] = b"\x00" * 100
    path.write_bytes(bytes(original))
    with pytest.raises(DamagedStoreError, match="header"):
        LabelStore(path, reader="alice")
    report = LabelStore.recover(path)
    assert report.schema_version_found is None
    assert report.damaged_copy.read_bytes() == bytes(original)
    assert "image_labels" in report.unreadable_tables
    with LabelStore(path, reader="alice") as store:  # a usable (empty) store again
        assert store.label_sets() == []
    # Recovering twice keeps both damaged copies.
    second = LabelStore.recover(path)
    assert second.damaged_copy != report.damaged_copy and report.damaged_copy.exists()


def test_an_uncheckpointed_wal_is_part_of_the_recovery(tmp_path):
    """Labels still only in the -wal file (the app crashed) are salvaged too."""
    path = tmp_path / "labels.sqlite"
    store = LabelStore(path, reader="alice")
    store.create_label_set("pneumonia", ["normal", "pneumonia"])
    for n in range(20):
        store.set_label("pneumonia", image(n), "normal")
    wal = Path(f"{path}-wal")
    assert wal.stat().st_size > 0
    # Copy the files as a crash would leave them (the open connection holds them).
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    (crashed / "labels.sqlite").write_bytes(path.read_bytes())
    (crashed / "labels.sqlite-wal").write_bytes(wal.read_bytes())
    store.close()
    report = LabelStore.recover(crashed / "labels.sqlite")
    assert report.labels_salvaged == 20
    assert Path(f"{report.damaged_copy}-wal").exists()
    assert not (crashed / "labels.sqlite-wal").exists() or \
        (crashed / "labels.sqlite-wal").stat().st_size == 0
    assert len(current(crashed / "labels.sqlite")) == 20


def test_recovering_a_missing_store_says_so(tmp_path):
    with pytest.raises(Exception, match="no label store"):
        LabelStore.recover(tmp_path / "none.sqlite")


def test_raw_sqlite_agrees_the_rebuilt_file_is_sound(tmp_path, template):
    path, _ = copy_of(template, tmp_path)
    smash_page(path, page_holding(path, b"importedrow-00700"))
    LabelStore.recover(path)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


def test_a_lost_measurement_comes_back_from_its_history(tmp_path):
    path = tmp_path / "labels.sqlite"
    with LabelStore(path, reader="alice") as store:
        kept = store.add_measurement(image(1), "angle", [(0, 0), (10, 0), (10, 10)],
                                     values={"angle_deg": 90.0}, label="knee")
        moved = store.update_measurement(kept.id, points=[(0, 0), (10, 0), (0, 10)],
                                         values={"angle_deg": 45.0})
        gone = store.add_measurement(image(1), "text", [(1, 1)], text="deleted later")
        store.delete_measurement(gone.id)
    raw = sqlite3.connect(path)
    raw.execute("DELETE FROM measurements")  # as if its page had been unreadable
    raw.commit()
    raw.close()
    report = LabelStore.recover(path)
    assert report.rebuilt_from_history["measurements"] == 1
    assert "measurements salvaged 0" in report.summary()
    with LabelStore(path, reader="alice") as store:
        assert store.measurements() == [moved]  # the latest state; the deleted one stays gone
        assert store.undo().kind == "delete_measurement"
        assert [m.text for m in store.measurements()] == [None, "deleted later"]
