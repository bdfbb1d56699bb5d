"""`medviewer train` under torchrun: two CPU processes (gloo) on a tiny subset."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings

import pytest

from medviewer.training import trainer


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_and_agree(kermany_subset_csv, tmp_path,
                                                    isolated_home):
    run_dir = tmp_path / "ddp-run"
    env = {**os.environ, "MEDVIEWER_HOME": str(isolated_home), "OMP_NUM_THREADS": "1"}

    def torchrun() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
             "2", "-m", "medviewer", "train", "--data", str(kermany_subset_csv), "--epochs",
             "2", "--batch-size", "8", "--input-size", "48", "--out", str(run_dir), "--device",
             "cpu", "--threads", "1", "--val-fraction", "0.25", "--test-fraction", "0.25"],
            capture_output=True, text=True, timeout=240, env=env)

    completed = torchrun()
    if completed.returncode != 0 and "terminate called without an active exception" in \
            completed.stderr:
        # Seen once in about 60 runs (2026-11-21): one rank aborted inside torch's C++ with
        # no Python error, never again in 45 reruns, loaded or not. Run it once more, and
        # say so in the report; a failure that repeats still fails.
        warnings.warn(f"torchrun aborted once, run again: {completed.stderr[-1500:]}")
        shutil.rmtree(run_dir, ignore_errors=True)
        completed = torchrun()
    assert completed.returncode == 0, completed.stderr[-6000:]
    out = completed.stdout
    # Only rank 0 prints: one start line, one line per epoch, one test line.
    assert out.count("training smallcnn") == 1 and "(x2)" in out
    assert out.count("epoch 1/2") == 1 and out.count("epoch 2/2") == 1
    assert out.count("test: accuracy") == 1
    last = trainer.load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert last["epoch"] == 2
    # 32 training images split over 2 ranks, batches of 8: 2 batches per rank per epoch.
    assert last["history"][-1]["train_images_per_second"] > 0
    assert (run_dir / "checkpoints" / "best.pt").is_file()
