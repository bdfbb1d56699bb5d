"""Label in a loop until killed (used by test_crash.py; run as a script).

Before each action it prints ``begin KEY CLASS`` and, only after the store API returned
(the transaction committed), ``ok KEY CLASS``; both lines are flushed at once, so every
``ok`` line the parent reads is a label the store promised to keep.

Usage: crash_writer.py STORE RUN_ID
"""

from __future__ import annotations

import random
import sys

from medviewer.labels.store import ImageRef, LabelStore

CLASSES = ("normal", "pneumonia", "effusion")
LABEL_SET = "crash"


def main() -> None:
    store_path, run = sys.argv[1], sys.argv[2]
    rng = random.Random(run)
    store = LabelStore(store_path, reader="crash-writer")
    print("ready", flush=True)
    written: list[str] = []
    for i in range(1_000_000):
        # Mostly new images, sometimes a change of mind on one labelled before.
        if written and rng.random() < 0.3:
            key = rng.choice(written)
        else:
            key = f"crash-{run}-{i}"
            written.append(key)
        class_name = rng.choice(CLASSES)
        print(f"begin {key} {class_name}", flush=True)
        store.set_label(LABEL_SET, ImageRef(key), class_name, note=f"action {i}")
        print(f"ok {key} {class_name}", flush=True)


if __name__ == "__main__":
    main()
