"""ONNX export: parity with torch, the CAM output, the model card, registration, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from medviewer import cli
from medviewer.app.training_export import export_model
from medviewer.inference import registry
from medviewer.jobs import run_to_end
from medviewer.training import data, export, metrics, trainer


@pytest.fixture(scope="module")
def trained_run(kermany_subset_csv, tmp_path_factory):
    config = trainer.TrainConfig(data=str(kermany_subset_csv), epochs=1, batch_size=16,
                                 input_size=64, val_fraction=0.25, test_fraction=0.25,
                                 seed=5, device="cpu", num_threads=1)
    run_dir = tmp_path_factory.mktemp("export-run")
    run_to_end(trainer.train(config, run_dir))
    return run_dir


@pytest.fixture
def exported(trained_run, tmp_path):
    # A one-epoch model on 16 test images cannot show it beats chance, so the export warns
    # and registering takes the user's word (tests/training/test_export_guards.py).
    outcome = run_to_end(export_model(trained_run, "tiny-pneumonia", "0.1", out_dir=tmp_path,
                                      register=True, register_despite_warnings=True))
    return outcome.result


def test_onnx_graph_has_the_agreed_inputs_and_outputs(exported):
    model = onnx.load(exported.onnx_path)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["probabilities", "cam", "features"]
    dims = [d.dim_value or d.dim_param for d in
            model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1:] == [1, 64, 64] and isinstance(dims[0], str)
    assert exported.size_bytes < 10_000_000


def test_parity_between_torch_and_onnxruntime_is_within_1e_4(exported, trained_run):
    assert exported.parity_images == 16
    assert exported.parity_max_abs_probabilities < 1e-4
    # Check it independently, on test images this time.
    payload = trainer.load_checkpoint(trained_run / "checkpoints" / "best.pt")
    model = trainer.model_from_checkpoint(payload)
    records = [data.ImageRecord(**row) for row in payload["split"]["test"]]
    images = run_to_end(data.preload_images(records, 64))
    torch_probs, torch_cam = export.run_torch(model, images)
    onnx_probs, onnx_cam = export.run_onnx(exported.onnx_path, images)
    assert np.abs(torch_probs - onnx_probs).max() < 1e-4
    assert np.abs(torch_cam - onnx_cam).max() < 1e-4 * max(1.0, np.abs(torch_cam).max())
    np.testing.assert_allclose(onnx_probs.sum(axis=1), 1.0, atol=1e-5)
    # The CAM is exact: its spatial mean plus the head's bias gives the logits.
    logits = onnx_cam.mean(axis=(2, 3)) + model.head.bias.detach().numpy()
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(logits), 1).numpy(), onnx_probs,
                               atol=1e-5)
    assert onnx_cam.shape == (16, 2, 4, 4)


def test_card_is_accepted_by_the_registry_and_the_model_is_listed(exported):
    card = registry.ModelCard.load(exported.card_path)
    assert card.classes == ["NORMAL", "PNEUMONIA"]
    assert (card.input.channels, card.input.height, card.input.width) == (1, 64, 64)
    assert card.outputs.cam == "cam" and card.outputs.probabilities == "probabilities"
    assert "not for clinical use" in card.intended_use
    # Only the finding gets a threshold: a normal image is never "flagged" as NORMAL.
    assert set(card.operating_points) == {"PNEUMONIA"}
    point = card.operating_points["PNEUMONIA"]
    assert 0 <= point.threshold <= 1 and "validation" in point.method
    assert "test_sensitivity" in point.metrics
    assert card.metrics["n"] == 16 and "PNEUMONIA" in card.metrics["auroc"]
    summary = card.training["data"]["summary"]
    assert summary["train"]["images"] == 32 and summary["test"]["images"] == 16
    assert card.training["parity"]["max_abs_probabilities"] < 1e-4
    registry.verify_model_files(registry.Path(exported.onnx_path), card)
    listed = {entry.key: entry for entry in registry.list_models()}
    assert "tiny-pneumonia@0.1" in listed
    assert listed["tiny-pneumonia@0.1"].source == "user"


def test_card_test_metrics_match_a_fresh_evaluation_of_the_file(exported, trained_run):
    """The card's figures come from the ONNX file itself on the saved test split."""
    card = registry.ModelCard.load(exported.card_path)
    payload = trainer.load_checkpoint(trained_run / "checkpoints" / "best.pt")
    records = [data.ImageRecord(**row) for row in payload["split"]["test"]]
    probabilities, _ = export.run_onnx(exported.onnx_path,
                                       run_to_end(data.preload_images(records, 64)))
    labels = np.array([r.label for r in records])
    from medviewer.training.metrics import auroc

    assert card.metrics["auroc"]["PNEUMONIA"] == pytest.approx(
        auroc(labels == 1, probabilities[:, 1]), abs=1e-9)
    # ... with the uncertainty of a 16-image test set beside each figure.
    intervals = card.metrics["intervals"]
    low, high = intervals["auroc"]["PNEUMONIA"]
    assert low <= card.metrics["auroc"]["PNEUMONIA"] <= high and intervals["level"] == 0.95
    low, high = intervals["sensitivity"]["PNEUMONIA"]
    assert low <= card.metrics["operating_points"]["PNEUMONIA"]["sensitivity"] <= high
    assert high - low > 0.1  # 8 positives cannot pin a sensitivity down


def test_export_of_a_run_without_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(export.ExportError, match="no best checkpoint"):
        run_to_end(export.export_run(tmp_path, "x", "1"))


def test_train_and_export_commands(kermany_subset_csv, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = cli.main(["train", "--data", str(kermany_subset_csv), "--epochs", "1",
                     "--batch-size", "16", "--input-size", "48", "--out", str(run_dir),
                     "--device", "cpu", "--threads", "1", "--val-fraction", "0.25",
                     "--test-fraction", "0.25", "--split-seed", "5", "--ema", "0.9",
                     "--json"])
    assert code == 0
    saved = json.loads((run_dir / "config.json").read_text())
    assert (saved["split_seed"], saved["ema_decay"], saved["seed"]) == (5, 0.9, 0)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["event"] for line in lines] == ["started", "epoch", "test", "result"]
    assert lines[1]["epoch"] == 1 and "val_auroc" in lines[1]

    code = cli.main(["train", "--resume", str(run_dir / "checkpoints" / "last.pt"),
                     "--epochs", "2"])
    out = capsys.readouterr().out
    assert code == 0 and "epoch 2/2" in out and "epoch 1/2" not in out

    code = cli.main(["export", str(run_dir), "--name", "cli-model", "--version", "2",
                     "--weights", "float16",
                     "--register-anyway"])  # a one-epoch model: the export warns
    out = capsys.readouterr().out
    assert code == 0 and "parity" in out and "registered as" in out
    installed = {entry.key: entry for entry in registry.list_models()}
    # Two epochs ran whichever was best (best.pt alone only knows those up to the best).
    assert installed["cli-model@2"].card.training["epochs_run"] == 2


def test_command_errors_are_one_line(tmp_path, capsys):
    code = cli.main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "missing" in err
    code = cli.main(["export", str(tmp_path), "--name", "a", "--version", "1"])
    assert code == 1 and "no best checkpoint" in capsys.readouterr().err


def test_runs_on_one_split_export_as_one_ensemble(trained_run, kermany_subset_csv, tmp_path):
    """Two seeds on the trained run's split: one graph, logits averaged, CAM still exact."""
    config = trainer.TrainConfig.from_dict({
        **trainer.load_checkpoint(trained_run / "checkpoints" / "best.pt")["config"],
        "seed": 6, "split_seed": 5})
    second = tmp_path / "second"
    run_to_end(trainer.train(config, second))
    result = run_to_end(export.export_run([trained_run, second], "tiny-ensemble", "1",
                                          out_dir=tmp_path / "out"))
    assert result.parity_max_abs_probabilities < 1e-4
    card = registry.ModelCard.load(result.card_path)
    members = card.training["ensemble_members"]
    assert [m["seed"] for m in members] == [5, 6]
    assert card.training["architecture"] == "ensemble of 2 smallcnn"
    assert set(card.operating_points) == {"PNEUMONIA"}

    payloads = [trainer.load_checkpoint(run / "checkpoints" / "best.pt")
                for run in (trained_run, second)]
    models = [trainer.model_from_checkpoint(p) for p in payloads]
    records = [data.ImageRecord(**row) for row in payloads[0]["split"]["test"]]
    images = run_to_end(data.preload_images(records, 64))
    probs, cam = export.run_onnx(result.onnx_path, images)
    with torch.no_grad():
        mean_logits = torch.stack([m(images) for m in models]).mean(0)
    np.testing.assert_allclose(probs, torch.softmax(mean_logits, 1).numpy(), atol=1e-5)
    mean_bias = np.mean([m.head.bias.detach().numpy() for m in models], axis=0)
    np.testing.assert_allclose(cam.mean(axis=(2, 3)) + mean_bias, mean_logits.numpy(),
                               atol=1e-4)
    # The card's validation threshold is the ensemble's own, chosen on its scores.
    val_records = [data.ImageRecord(**row) for row in payloads[0]["split"]["val"]]
    val_images = run_to_end(data.preload_images(val_records, 64))
    val_probs, _ = export.run_onnx(result.onnx_path, val_images)
    labels = np.array([r.label for r in val_records])
    # Chosen on the calibrated validation scores (temperature fitted on validation).
    from medviewer.inference.calibration import apply_temperature

    calibrated = apply_temperature(val_probs, card.calibration.temperature)
    chosen = metrics.choose_operating_point(labels == 1, calibrated[:, 1])
    assert card.operating_points["PNEUMONIA"].threshold == pytest.approx(chosen.threshold,
                                                                         abs=1e-5)


def test_an_ensemble_of_runs_on_other_splits_is_refused(trained_run, kermany_subset_csv,
                                                        tmp_path):
    config = trainer.TrainConfig.from_dict({
        **trainer.load_checkpoint(trained_run / "checkpoints" / "best.pt")["config"],
        "seed": 9})
    other = tmp_path / "other"
    run_to_end(trainer.train(config, other))
    with pytest.raises(export.ExportError, match="another split.*--split-seed"):
        run_to_end(export.export_run([trained_run, other], "x", "1", out_dir=tmp_path))


@pytest.mark.parametrize("weights, size_ratio, dtype", [
    ("float16", 0.55, onnx.TensorProto.FLOAT16), ("int8", 0.3, onnx.TensorProto.INT8)])
def test_smaller_weights_shrink_the_file_and_keep_parity(trained_run, tmp_path, weights,
                                                          size_ratio, dtype):
    full = run_to_end(export.export_run(trained_run, "tiny", "1", out_dir=tmp_path / "a"))
    small = run_to_end(export.export_run(trained_run, "tiny", "1", out_dir=tmp_path / "b",
                                         weights=weights))
    assert small.size_bytes < size_ratio * full.size_bytes
    graph = onnx.load(small.onnx_path).graph
    assert any(i.data_type == dtype for i in graph.initializer)
    # Rounding the weights moves the probabilities a little, and the parity check reports
    # by how much; on the test split the two files agree as closely.
    tolerance = export.WEIGHT_STORAGE[weights][2]
    assert 0 < small.parity_max_abs_probabilities < tolerance
    records = [data.ImageRecord(**row) for row in trainer.load_checkpoint(
        trained_run / "checkpoints" / "best.pt")["split"]["test"]]
    images = run_to_end(data.preload_images(records, 64))
    p_full, cam_full = export.run_onnx(full.onnx_path, images)
    p_small, cam_small = export.run_onnx(small.onnx_path, images)
    assert np.abs(p_full - p_small).max() < tolerance
    assert np.corrcoef(cam_full.ravel(), cam_small.ravel())[0, 1] > 0.99
    assert registry.ModelCard.load(small.card_path).training["weights"].startswith(weights)


def test_an_unknown_weight_storage_is_refused_in_one_sentence(trained_run, tmp_path):
    with pytest.raises(export.ExportError, match="float32, float16, int8, not int4"):
        run_to_end(export.export_run(trained_run, "tiny", "1", out_dir=tmp_path,
                                     weights="int4"))


def test_an_ensemble_of_two_architectures_is_refused(trained_run, tmp_path):
    """Their activation maps differ in size (stride 16 against 32): one sentence, no file."""
    config = trainer.TrainConfig.from_dict({
        **trainer.load_checkpoint(trained_run / "checkpoints" / "best.pt")["config"],
        "arch": "mobilenet_v3_small", "split_seed": 5, "seed": 7})
    other = tmp_path / "other"
    run_to_end(trainer.train(config, other))
    with pytest.raises(export.ExportError, match="mobilenet_v3_small.*one architecture"):
        run_to_end(export.export_run([trained_run, other], "x", "1", out_dir=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_the_card_counts_epochs_to_the_last_checkpoint_not_the_best(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    header = {"format": trainer.CHECKPOINT_FORMAT}
    torch.save({**header, "epoch": 7, "history": [{}] * 7}, folder / "best.pt")
    torch.save({**header, "epoch": 10}, folder / "last.pt")
    best = trainer.load_checkpoint(folder / "best.pt")
    assert export._epochs_run(folder / "best.pt", best) == 10
    (folder / "last.pt").unlink()  # a best.pt exported on its own
    assert export._epochs_run(folder / "best.pt", best) == 7


def test_the_card_is_calibrated_gated_and_names_no_path_of_this_machine(exported):
    """Calibration fitted on validation, a features output with its OOD statistics, the
    finding's threshold chosen on calibrated scores, the no-finding class named; and no
    absolute path anywhere in the card."""
    import json

    card = registry.ModelCard.load(exported.card_path)
    assert card.calibration is not None and 0.05 <= card.calibration.temperature <= 20
    figures = card.calibration.figures
    assert set(figures["before"]) == set(figures["after"]) == {"validation", "test"}
    assert card.outputs.features == "features" and card.ood is not None
    assert (Path(exported.onnx_path).parent / card.ood.file).is_file()
    assert card.no_finding_class == "NORMAL"
    assert card.operating_points["PNEUMONIA"].method == "youden on validation"
    assert card.metrics["calibrated"] is True

    def strings(value):
        if isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)
        elif isinstance(value, str):
            yield value

    absolute = [s for s in strings(json.loads(Path(exported.card_path).read_text()))
                if s.startswith("/") or s.startswith(str(Path.home()))]
    assert absolute == []
def test_the_command_line_and_the_wizard_give_the_same_card_and_registration(
        trained_run, tmp_path, monkeypatch, capsys):
    """`medviewer export --register` and the workflow the wizard's Export page runs (no
    threshold moved, the defaults of its fields), each into its own home: the same card
    field by field (but its time stamp) and the same registered files, the checkpoint for
    fine-tuning included."""
    registered = {}
    for way in ("cli", "wizard"):
        monkeypatch.setenv("MEDVIEWER_HOME", str(tmp_path / f"home-{way}"))
        out_dir = tmp_path / f"exported-{way}"
        if way == "cli":
            assert cli.main(["export", str(trained_run), "--name", "same-run", "--version",
                             "1", "--out-dir", str(out_dir), "--register-anyway"]) == 0
            assert "registered as" in capsys.readouterr().out
        else:
            outcome = run_to_end(export_model(str(trained_run), "same-run", "1",
                                              description="", chosen_points={},
                                              register=True, out_dir=str(out_dir),
                                              weights="float32",
                                              register_despite_warnings=True))
            assert outcome.entry.key == "same-run@1"
        (entry,) = [e for e in registry.list_models() if e.key == "same-run@1"]
        assert entry.source == "user"
        registered[way] = entry

    cli_entry, wizard_entry = registered["cli"], registered["wizard"]
    cli_card, wizard_card = cli_entry.card.to_dict(), wizard_entry.card.to_dict()
    assert cli_card.pop("created") and wizard_card.pop("created")
    assert cli_card.keys() == wizard_card.keys()
    for field_name in cli_card:  # one field at a time, so a failure names the field
        assert cli_card[field_name] == wizard_card[field_name], field_name
    cli_folder, wizard_folder = cli_entry.onnx_path.parent, wizard_entry.onnx_path.parent
    files = sorted(p.name for p in cli_folder.iterdir())
    assert files == sorted(p.name for p in wizard_folder.iterdir())
    assert "training-checkpoint.pt" in files and cli_entry.onnx_path.name in files
    card_name = registry.card_path_for(cli_entry.onnx_path).name
    for name in files:
        if name != card_name:
            assert (cli_folder / name).read_bytes() == (wizard_folder / name).read_bytes(), name
    assert (cli_folder / "training-checkpoint.pt").read_bytes() == \
        (trained_run / "checkpoints" / "best.pt").read_bytes()


def test_thresholds_are_chosen_for_one_run_not_an_ensemble(trained_run, tmp_path):
    with pytest.raises(export.ExportError, match="one run, not for an ensemble"):
        run_to_end(export_model([trained_run, trained_run], "x", "1", out_dir=tmp_path,
                                chosen_points={"PNEUMONIA": {"threshold": 0.5,
                                                             "val_sensitivity": 1.0,
                                                             "val_specificity": 0.5}}))
    assert not tmp_path.joinpath("x-1").exists()
