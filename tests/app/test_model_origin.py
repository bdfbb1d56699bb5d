"""Where a listed model came from, in words: built-in, trained here (its card was written by
MedViewer's exporter), imported."""

from __future__ import annotations

from dataclasses import replace

from medviewer.app.training_export import model_origin
from medviewer.inference.registry import ModelEntry, scan_models


def test_built_in_trained_here_and_imported():
    entries, _problems = scan_models(include_user=False)
    builtin = next(e for e in entries if e.card.name == "pneumonia-demo")
    assert model_origin(builtin) == "built-in"
    # The same card in the user's models folder: MedViewer's exporter wrote it.
    as_user = ModelEntry(builtin.card, builtin.onnx_path, builtin.card_path, "user")
    assert model_origin(as_user) == "trained here"
    # A card from elsewhere records no MedViewer training run.
    foreign = replace(builtin.card, training={"architecture": "resnet50", "epochs_run": 30})
    assert model_origin(ModelEntry(foreign, builtin.onnx_path, builtin.card_path,
                                   "user")) == "imported"
