"""Label store throughput: committed actions per second and current-label queries.

Baselines, measured in the same run on the same disk:
* commits: plain sqlite3 single-row INSERT + COMMIT per action with the store's pragmas
  (WAL, synchronous=FULL), i.e. the cost of the fsync alone;
* queries: one plain indexed SELECT per image on the same table.

Also the store's own CPU time per call (process time, store on a RAM disk when the machine
has /dev/shm, so the fsync's wait does not count), against the same plain INSERT + COMMIT:
what the store's Python and extra statements cost, which the commit-bound rates above
cannot show on a busy disk.

Run: .venv/bin/python -m tests.bench labels
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from medviewer.labels.store import ImageRef, LabelEntry, LabelStore

ACTIONS = 300
IMAGES = 20_000
READERS = ("alice", "bob")
QUERY_IMAGES = (1, 100, 1000)
CLASSES = ("normal", "pneumonia")


def _key(n: int) -> str:
    return f"1.2.826.0.1.3680043.8.498.{n}"


def bench_commits(folder: Path) -> tuple[float, float]:
    """(store actions/s, plain sqlite inserts/s)."""
    raw_path = folder / "baseline.sqlite"
    raw = sqlite3.connect(raw_path, isolation_level=None)
    raw.execute("PRAGMA journal_mode = WAL")
    raw.execute("PRAGMA synchronous = FULL")
    raw.execute("CREATE TABLE labels (id INTEGER PRIMARY KEY, image_key TEXT, reader TEXT, "
                "classes TEXT, labelled_at TEXT)")
    started = time.perf_counter()
    for n in range(ACTIONS):
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("INSERT INTO labels (image_key, reader, classes, labelled_at) "
                    "VALUES (?, 'alice', '[\"normal\"]', '2024-01-01')", (_key(n),))
        raw.execute("COMMIT")
    baseline = ACTIONS / (time.perf_counter() - started)
    raw.close()

    with LabelStore(folder / "store.sqlite", reader="alice") as store:
        store.create_label_set("bench", list(CLASSES))
        rng = random.Random(1)
        latencies = []
        started = time.perf_counter()
        for n in range(ACTIONS):
            began = time.perf_counter()
            store.set_label("bench", ImageRef(_key(n), path=f"/data/{n}.dcm"),
                            rng.choice(CLASSES))
            latencies.append(time.perf_counter() - began)
        ours = ACTIONS / (time.perf_counter() - started)
        latencies.sort()
        started = time.perf_counter()
        for _ in range(ACTIONS // 3):
            store.undo()
        undo_rate = (ACTIONS // 3) / (time.perf_counter() - started)
    print(f"committed label actions: {ours:8.0f}/s  (one set_label per transaction, history "
          f"included; undo {undo_rate:.0f}/s)")
    print(f"set_label latency:        p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms")
    print(f"baseline sqlite inserts: {baseline:8.0f}/s  (same pragmas: WAL, synchronous=FULL)")
    print(f"ratio store/baseline:    {ours / baseline:8.2f}")
    return ours, baseline


def _time(function, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_queries(folder: Path) -> None:
    path = folder / "big.sqlite"
    rng = random.Random(2)
    with LabelStore(path, reader="alice") as store:
        store.create_label_set("bench", list(CLASSES))
        entries = [LabelEntry(ImageRef(_key(n), path=f"/data/{n}.dcm"), reader,
                              (rng.choice(CLASSES),))
                   for n in range(IMAGES) for reader in READERS]
        started = time.perf_counter()
        store.import_labels("bench", entries)
        print(f"bulk import of {len(entries)} labels in one action: "
              f"{time.perf_counter() - started:.2f} s")
    size_mb = path.stat().st_size / 1e6
    started = time.perf_counter()
    store = LabelStore(path, reader="alice")  # includes PRAGMA quick_check
    print(f"open with quick_check ({size_mb:.0f} MB, {len(entries)} labels + history): "
          f"{(time.perf_counter() - started) * 1000:.0f} ms")
    raw = sqlite3.connect(path)
    set_id = raw.execute("SELECT id FROM label_sets WHERE name = 'bench'").fetchone()[0]
    try:
        for count in QUERY_IMAGES:
            keys = [_key(n) for n in rng.sample(range(IMAGES), count)]
            ours = _time(lambda: store.current_labels("bench", keys))

            def plain() -> None:
                for key in keys:
                    raw.execute("SELECT reader, classes FROM image_labels WHERE "
                                "label_set_id = ? AND image_key = ?", (set_id, key)).fetchall()

            baseline = _time(plain)
            print(f"current labels for {count:5d} images: {ours * 1000:7.2f} ms  "
                  f"(baseline {count} plain indexed SELECTs {baseline * 1000:7.2f} ms, "
                  f"ratio {ours / baseline:.2f})")
        whole = _time(lambda: store.current_labels("bench"), repeat=3)
        print(f"current labels for the whole set ({IMAGES} images, {len(entries)} labels): "
              f"{whole * 1000:.0f} ms")
    finally:
        raw.close()
        store.close()


def bench_cpu() -> None:
    ram = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="bench-labels-cpu-",
                                   dir=ram if ram.is_dir() else None))
    try:
        raw = sqlite3.connect(folder / "baseline.sqlite", isolation_level=None)
        raw.execute("PRAGMA journal_mode = WAL")
        raw.execute("PRAGMA synchronous = FULL")
        raw.execute("CREATE TABLE labels (id INTEGER PRIMARY KEY, image_key TEXT, "
                    "classes TEXT)")

        def plain(n: int) -> None:
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("INSERT INTO labels (image_key, classes) VALUES (?, '[\"normal\"]')",
                        (_key(n),))
            raw.execute("COMMIT")

        baseline = _cpu_ms(plain, 3000)
        raw.close()
        with LabelStore(folder / "store.sqlite", reader="alice") as store:
            store.create_label_set("bench", list(CLASSES))
            set_ms = _cpu_ms(lambda n: store.set_label(
                "bench", ImageRef(_key(n % 500), path=f"/data/{n}.dcm"), CLASSES[n // 500 % 2]),
                3000)  # every call changes the decision: one action each
            undo_ms = _cpu_ms(lambda n: store.undo(), 1000)
            read_ms = _cpu_ms(lambda n: store.label_for("bench", _key(n % 500)), 5000)
            entries = [LabelEntry(ImageRef(_key(n)), "bob", ("normal",)) for n in range(20_000)]
            import_s = _cpu_ms(lambda n: store.import_labels("bench", entries), 1) / 1000
        print(f"store CPU per call ({'RAM disk' if ram.is_dir() else 'temp folder'}): "
              f"set_label {set_ms:.3f} ms (baseline plain INSERT + COMMIT {baseline:.3f} ms, "
              f"ratio {set_ms / baseline:.1f}), undo {undo_ms:.3f} ms, label_for "
              f"{read_ms:.4f} ms, import of 20000 labels {import_s:.2f} s")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _cpu_ms(call, repeat: int) -> float:
    started = time.process_time()
    for n in range(repeat):
        call(n)
    return (time.process_time() - started) / repeat * 1000


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-labels-", dir=os.environ.get("BENCH_DIR")))
    try:
        print(f"store folder: {folder}")
        bench_commits(folder)
        bench_queries(folder)
        bench_cpu()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
