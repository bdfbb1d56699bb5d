"""What an export warns about before a model is registered, and the finished runs that can
still be exported: the one rule (`gates.export_warnings`) at its boundaries, then
`medviewer export` refusing to register a model whose test AUROC cannot beat chance (a
real run whose test images are all one X-ray, so its test AUROC is exactly 0.5), and
`medviewer runs` listing the runs folder."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from medviewer import cli
from medviewer.app import training as app_training
from medviewer.inference import registry
from medviewer.jobs import run_to_end
from medviewer.training import gates, metrics, trainer
from medviewer.training.gates import AurocFigure

CLASSES = ["NORMAL", "PNEUMONIA"]
GOOD_VALIDATION = {"PNEUMONIA": AurocFigure(0.90, 0.82, 0.96)}


# ---------------------------------------------------------------- the rule


def test_a_test_auroc_clear_of_chance_and_of_validation_gives_no_warning():
    assert gates.export_warnings(CLASSES, GOOD_VALIDATION,
                                 {"PNEUMONIA": AurocFigure(0.88, 0.80, 0.95)}) == []


@pytest.mark.parametrize("low, warned", [(0.5, True), (0.4999, True), (0.5001, False)])
def test_an_interval_reaching_0_5_warns(low, warned):
    lines = gates.export_warnings(CLASSES, GOOD_VALIDATION,
                                  {"PNEUMONIA": AurocFigure(0.83, low, 0.95)})
    assert bool(lines) is warned
    if warned:
        assert lines == [f"PNEUMONIA: the test AUROC is 0.830 (95 % interval {low:.2f}–0.95); "
                         "the interval includes 0.5, so on its test images the model is not "
                         "shown to do better than chance."]


def test_an_auroc_below_chance_says_so_and_asks_about_swapped_classes():
    """Issue #12's model: test AUROC 0.449. Its interval may stop short of 0.5 from below:
    that is worse than chance, not better."""
    (line,) = gates.export_warnings(CLASSES, {"PNEUMONIA": AurocFigure(0.45, 0.30, 0.62)},
                                    {"PNEUMONIA": AurocFigure(0.30, 0.20, 0.42)})
    assert "below 0.5" in line and "worse than chance" in line and "swapped" in line
    wide = gates.export_warnings(CLASSES, {}, {"PNEUMONIA": AurocFigure(0.449, 0.31, 0.58)})
    assert len(wide) == 1 and "includes 0.5" in wide[0] and "0.449" in wide[0]


@pytest.mark.parametrize("test_high, warned", [(0.819, True), (0.82, False)])
def test_a_test_auroc_below_validation_beyond_both_intervals_warns(test_high, warned):
    lines = gates.export_warnings(CLASSES, GOOD_VALIDATION,
                                  {"PNEUMONIA": AurocFigure(0.74, 0.62, test_high)})
    assert bool(lines) is warned
    if warned:
        assert "below the validation AUROC, 0.900 (0.82–0.96)" in lines[0]
        assert "more than their intervals allow" in lines[0]


def test_below_chance_and_below_validation_are_two_sentences():
    lines = gates.export_warnings(CLASSES, GOOD_VALIDATION,
                                  {"PNEUMONIA": AurocFigure(0.30, 0.20, 0.42)})
    assert len(lines) == 2 and "below 0.5" in lines[0] and "validation AUROC" in lines[1]


def test_no_test_figure_is_a_warning_and_only_findings_are_judged():
    """No test split (or no NORMAL in it): unmeasured. NORMAL is never a finding, so its
    (equal, for two classes) AUROC is not judged twice; with three classes each finding is."""
    (line,) = gates.export_warnings(CLASSES, GOOD_VALIDATION, {})
    assert line.startswith("PNEUMONIA: there is no test AUROC")
    three = ["NORMAL", "BACTERIA", "VIRUS"]
    lines = gates.export_warnings(three, {}, {"BACTERIA": AurocFigure(0.9, 0.85, 0.94),
                                              "VIRUS": AurocFigure(0.6, 0.45, 0.72),
                                              "NORMAL": AurocFigure(0.5, 0.4, 0.6)})
    assert len(lines) == 1 and lines[0].startswith("VIRUS: the test AUROC is 0.600")


def test_figures_are_the_cards_auroc_and_bootstrap_interval():
    import numpy as np

    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 40)
    finding = np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0, 1)
    probabilities = np.stack([1 - finding, finding], axis=1)
    (name, figure), = gates.auroc_figures(probabilities, labels, CLASSES).items()
    card_style = metrics.classification_metrics(probabilities, labels, CLASSES,
                                                intervals=True)
    assert name == "PNEUMONIA"
    assert figure.value == card_style["auroc"]["PNEUMONIA"]
    assert [figure.low, figure.high] == card_style["intervals"]["auroc"]["PNEUMONIA"]
    one_class = gates.auroc_figures(probabilities[:40], labels[:40], CLASSES)
    assert one_class == {}  # no PNEUMONIA image: no AUROC


def test_the_ood_fit_survives_training_features_that_never_vary():
    """A training split of one X-ray copied (the runs below) gives one feature vector: the
    export's OOD fit must not stop on a singular covariance."""
    import numpy as np

    from medviewer.training import ood

    features = np.ones((10, 4))
    statistics = ood.fit_statistics(features, np.repeat([0, 1], 5), 2)
    assert statistics.scores(features).max() == 0
    assert statistics.scores(features + 1).min() > 0


# ---------------------------------------------------------------- medviewer export


def one_xray_test_csv(shared_data: Path, folder: Path, per_class: int = 6) -> Path:
    """A test set whose images are all copies of one X-ray, half labelled each class: every
    model scores them alike, so the test AUROC is exactly 0.5 with a 0.50-0.50 interval."""
    source = sorted((shared_data / "xray/kermany224/train/NORMAL").iterdir())[0]
    folder.mkdir(parents=True)
    rows = ["path,label"]
    for index in range(2 * per_class):
        copy = folder / f"IM-{9000 + index:04d}-0001.jpeg"
        shutil.copyfile(source, copy)
        rows.append(f"{copy},{CLASSES[index % 2]}")
    path = folder / "test.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def chance_run(kermany_subset_csv, shared_data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("chance-run")
    config = trainer.TrainConfig(
        data=str(kermany_subset_csv), test_data=str(one_xray_test_csv(shared_data,
                                                                      root / "one-xray")),
        epochs=1, batch_size=16, input_size=32, val_fraction=0.25, test_fraction=0.0,
        seed=4, device="cpu", num_threads=1)
    run_to_end(trainer.train(config, root / "run"))
    return root / "run"


@pytest.mark.slow
def test_export_warns_and_registers_only_when_told_to_anyway(chance_run, tmp_path, capsys):
    code = cli.main(["export", str(chance_run), "--name", "chance", "--version", "1",
                     "--out-dir", str(tmp_path), "--register"])
    captured = capsys.readouterr()
    assert code == 1
    assert ("WARNING PNEUMONIA: the test AUROC is 0.500 (95 % interval 0.50–0.50); the "
            "interval includes 0.5") in captured.out
    assert captured.err.count("\n") == 1 and "not registered" in captured.err \
        and "--register-anyway" in captured.err
    assert (tmp_path / "chance-1" / "chance.onnx").is_file()  # exported all the same
    assert "chance@1" not in {e.key for e in registry.list_models()}
    # The sentence quotes the card's own test figures.
    card = registry.ModelCard.load(tmp_path / "chance-1" / "chance.json")
    assert card.metrics["auroc"]["PNEUMONIA"] == 0.5
    assert card.metrics["intervals"]["auroc"]["PNEUMONIA"] == [0.5, 0.5]

    code = cli.main(["export", str(chance_run), "--name", "chance", "--version", "1",
                     "--out-dir", str(tmp_path), "--register-anyway", "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0 and printed["registered_path"]
    assert printed["warnings"] and "includes 0.5" in printed["warnings"][0]
    assert "chance@1" in {e.key for e in registry.list_models()}


# ---------------------------------------------------------------- finished runs


def fake_run(folder: Path, name: str, started: float, *, checkpoint: bool = True,
             result: dict | None = None, history: list[dict] | None = None) -> Path:
    """A run folder as the trainer leaves it, written by hand (listing reads only JSON)."""
    run = folder / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"data": "/data/xray/chest", "arch": "resnet14",
                                                 "input_size": 128}))
    os.utime(run / "config.json", (started, started))
    if checkpoint:
        (run / "checkpoints" / "best.pt").write_bytes(b"not read by the listing")
    if result is not None:
        (run / "result.json").write_text(json.dumps(result))
    if history is not None:
        (run / "history.jsonl").write_text("\n".join(json.dumps(h) for h in history) + "\n")
    return run


def test_runs_with_a_checkpoint_are_listed_newest_first_with_what_they_were(tmp_path,
                                                                            capsys):
    folder = app_training.runs_dir()
    now = time.time()
    fake_run(folder, "a-finished", now - 7200,
             result={"best_val_auroc": 0.91, "epochs_run": 12, "cancelled": False})
    fake_run(folder, "b-stopped", now - 3600,
             result={"best_val_auroc": 0.77, "epochs_run": 3, "cancelled": True})
    fake_run(folder, "c-running", now - 60,
             history=[{"epoch": 1, "best_val_auroc": 0.6}, {"epoch": 2, "best_val_auroc": 0.7}])
    fake_run(folder, "d-no-checkpoint", now, checkpoint=False)
    runs = app_training.list_finished_runs()
    assert [Path(r.run_dir).name for r in runs] == ["c-running", "b-stopped", "a-finished"]
    assert [(r.ended, r.best_val_auroc, r.epochs_run) for r in runs] == [
        ("unfinished", 0.7, None), ("stopped", 0.77, 3), ("finished", 0.91, 12)]
    assert runs[2].started == time.strftime("%Y-%m-%d %H:%M", time.localtime(now - 7200))
    assert (runs[0].arch, runs[0].input_size, runs[0].data) == ("resnet14", 128,
                                                                "/data/xray/chest")
    # The fine-tuning sources are the same runs.
    assert [s.label for s in app_training._fine_tune_sources()] == [
        "Run c-running", "Run b-stopped", "Run a-finished"]

    assert cli.main(["runs", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [Path(r["checkpoint"]).parent.parent.name for r in listed] == [
        "c-running", "b-stopped", "a-finished"]
    assert cli.main(["runs"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"3 runs in {folder}") and "val AUROC 0.910" in text
    assert cli.main(["runs", "--folder", str(tmp_path / "missing")]) == 1
    assert "does not exist" in capsys.readouterr().err
