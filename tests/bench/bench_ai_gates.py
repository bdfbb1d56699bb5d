"""What the answer's gates cost per read: calibration, the scope check and the OOD score.

The shipped demo model reads 200 Kermany test JPEGs through ``predict_paths`` (batch 8, 2
decode threads, not published) twice per round: with its card as shipped (features output
fetched, OOD score, calibration, scope check) and with a copy of the card without those
sections (the same ONNX file; only probabilities are fetched). Rounds alternate the order;
the ratio of medians is the gates' overhead. Target: <= 1.05x.

    .venv/bin/python -m tests.bench ai_gates
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KERMANY = PROJECT_ROOT.parent / "shared" / "data" / "xray" / "kermany224" / "test"
ROUNDS = 6


def main() -> None:
    os.environ.setdefault("MEDVIEWER_HOME", tempfile.mkdtemp(prefix="medviewer-bench-"))
    from medviewer.inference import registry
    from medviewer.inference.predict import predict_paths
    from medviewer.inference.runtime import get_session

    entry = max((e for e in registry.scan_models(include_user=False)[0]
                 if e.name == "pneumonia-demo"), key=lambda e: e.version)
    folder = Path(tempfile.mkdtemp(prefix="medviewer-ungated-"))
    try:
        shutil.copy(entry.onnx_path, folder / entry.onnx_path.name)
        card = json.loads(entry.card_path.read_text(encoding="utf-8"))
        for key in ("calibration", "ood", "intended_scope", "no_finding_class"):
            card.pop(key, None)
        card["outputs"].pop("features", None)
        card["version"] = "ungated"
        (folder / entry.card_path.name).write_text(json.dumps(card), encoding="utf-8")
        plain = registry.ModelEntry(registry.ModelCard.from_dict(card), folder /
                                    entry.onnx_path.name, folder / entry.card_path.name,
                                    "bench")
        files = sorted(p for c in ("NORMAL", "PNEUMONIA") for p in (KERMANY / c).iterdir())
        files = files[::3][:200]
        sessions = {"gated": get_session(entry, "cpu"), "plain": get_session(plain, "cpu")}
        for session in sessions.values():
            predict_paths(files[:16], session, audit=False)  # warm-up
        times: dict[str, list[float]] = {"gated": [], "plain": []}
        for round_ in range(ROUNDS):
            order = ("gated", "plain") if round_ % 2 == 0 else ("plain", "gated")
            for name in order:
                started = time.perf_counter()
                predict_paths(files, sessions[name], audit=False)
                times[name].append(time.perf_counter() - started)
        gated, plain_s = statistics.median(times["gated"]), statistics.median(times["plain"])
        print(f"{len(files)} images, median of {ROUNDS} alternating rounds")
        print(f"with calibration, scope check and OOD score: {len(files) / gated:.1f} img/s")
        print(f"card without them (same ONNX file):          {len(files) / plain_s:.1f} img/s")
        print(f"ratio (time gated / plain): {gated / plain_s:.3f}x (target <= 1.05x)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
