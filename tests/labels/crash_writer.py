"""Label in a loop until killed (used by test_crash.py; run as a script).

Before each action it prints ``begin KEY CLASS`` and, only after the store API returned
(the transaction committed), ``ok KEY CLASS``; both lines are flushed at once, so every
``ok`` line the parent reads is a label the store promised to keep.

With ``measurements`` as third argument it keeps distance measurements instead: ``begin``
and ``ok`` carry the measurement's label and its length.

Usage: crash_writer.py STORE RUN_ID [measurements]
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
    if sys.argv[3:] == ["measurements"]:
        measure(store, run, rng)
        return
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


def measure(store: LabelStore, run: str, rng: random.Random) -> None:
    image = ImageRef(f"crash-image-{run}", width=1000, height=1000)
    for i in range(1_000_000):
        name, length = f"m-{run}-{i}", rng.randint(1, 900)
        print(f"begin {name} {length}", flush=True)
        store.add_measurement(image, "distance", [(0, 10), (length, 10)], label=name,
                              pixel_spacing=(0.5, 0.5), spacing_source="PixelSpacing",
                              values={"length_mm": length / 2})
        print(f"ok {name} {length}", flush=True)


if __name__ == "__main__":
    main()
