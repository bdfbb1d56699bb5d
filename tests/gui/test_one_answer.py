"""One AI answer in every GUI consumer (issue #12): the AI panel, the label panel's suggestion
and Enter, the batch table, the disagreement filter and the audit log all follow the one
decision rule, at the boundary cases: a probability exactly at the threshold, just below
it with and without a "no finding" class, and an image outside the model's intended use.

The model is the real mean model of tests/inference (probabilities = [1 - mean, mean]); the
threshold is set to the very probability a read returned, so p == threshold exactly.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from medviewer.inference.audit import AuditLog
from medviewer.labels.store import LabelStore, default_store_path

from .ai_helpers import grey_png, install_mean_model, no_builtin_models  # noqa: F401
from .test_label_panel import create_label_set, press, settle


def _read(qtbot, window, path: Path):
    ai = window.ai
    with qtbot.waitSignal(ai.read_finished, timeout=30_000) as done:
        window.open_paths([path])
    return done.args[0]


def _choose(qtbot, window, entry) -> None:
    with qtbot.waitSignal(window.ai.model_ready, timeout=30_000):
        window.ai.choose_model(entry.key)


def _consumers(qtbot, window, folder: Path) -> dict:
    """What each consumer says about the one image in ``folder``."""
    ai, panel = window.ai, window.label_panel
    read = ai.read
    with qtbot.waitSignal(ai.batch.ended, timeout=60_000):
        ai.batch.run([folder], folder.name)
    (row,) = ai.batch.panel.rows()
    audit = AuditLog().rows()[0]
    return {
        "panel_flagged": ai.panel.finding_label.text().startswith("Flagged: finding"),
        "offered": read.prediction.offered,
        "label_suggests": panel.state.suggested_classes(),
        "batch_decision": row["Decision"],
        "audit_flagged": audit["operating_points"]["finding"]["flagged"],
    }


@pytest.fixture
def one_image(tmp_path) -> Path:
    folder = tmp_path / "one"
    folder.mkdir()
    return grey_png(folder / "grey.png", np.full((32, 32), 150, np.uint8))


def test_at_the_threshold_every_consumer_flags_and_offers_the_finding(
        qtbot, main_window, no_builtin_models, one_image, tmp_path):  # noqa: F811
    window = main_window
    probe = install_mean_model(tmp_path / "models", name="probe")
    _choose(qtbot, window, probe)
    p = _read(qtbot, window, one_image).prediction.score("finding").probability
    at = install_mean_model(tmp_path / "models", name="at-threshold", threshold=p)
    _choose(qtbot, window, at)
    read = window.ai.read_current()
    with qtbot.waitSignal(window.ai.read_finished, timeout=30_000):
        pass
    assert read is not None and window.ai.read.prediction.score("finding").threshold == p
    said = _consumers(qtbot, window, one_image.parent)
    assert said == {"panel_flagged": True, "offered": ["finding"],
                    "label_suggests": None, "batch_decision": "finding",
                    "audit_flagged": True}  # no label set yet: nothing to suggest into
    # With a label set, Enter takes exactly what the decision offered.
    panel = window.label_panel
    create_label_set(qtbot, panel, "grey", ["normal", "finding"])
    assert panel.state.suggested_classes() == ("finding",)
    assert "suggests finding (flagged)" in panel.ai_label.text()
    press(qtbot, window, Qt.Key.Key_Return)
    settle(qtbot, panel)
    with LabelStore(default_store_path(), reader="inspector") as store:
        (label,) = store.current_labels("grey")
    assert (label.classes, label.source, label.ai_classes) == (
        ("finding",), "ai_accepted", ("finding",))
    # The filter's "disagreeing" uses the same suggestion: agreeing here.
    assert not panel.state.disagrees(one_image)


def test_just_below_the_threshold_nothing_is_flagged_and_only_a_named_no_finding_is_offered(
        qtbot, main_window, no_builtin_models, one_image, tmp_path):  # noqa: F811
    window = main_window
    probe = install_mean_model(tmp_path / "models", name="probe")
    _choose(qtbot, window, probe)
    p = _read(qtbot, window, one_image).prediction.score("finding").probability
    above = math.nextafter(p, 1.0)
    without = install_mean_model(tmp_path / "models", name="no-normal", threshold=above)
    _choose(qtbot, window, without)
    with qtbot.waitSignal(window.ai.read_finished, timeout=30_000):
        window.ai.read_current()
    said = _consumers(qtbot, window, one_image.parent)
    assert said["panel_flagged"] is False and said["offered"] == []
    assert said["batch_decision"] == "—" and said["audit_flagged"] is False
    assert window.ai.panel.finding_label.text().startswith("Not flagged: finding")
    # Nothing flagged: no saliency map is shown silently.
    assert window.ai.overlay.map is None and window.ai.panel.class_combo.currentIndex() == -1

    named = install_mean_model(tmp_path / "models", name="named-normal", threshold=above,
                               no_finding_class="normal")
    _choose(qtbot, window, named)
    with qtbot.waitSignal(window.ai.read_finished, timeout=30_000):
        window.ai.read_current()
    said = _consumers(qtbot, window, one_image.parent)
    assert said["offered"] == ["normal"] and said["batch_decision"] == "normal"
    panel = window.label_panel
    create_label_set(qtbot, panel, "grey", ["normal", "finding"])
    assert panel.state.suggested_classes() == ("normal",)
    assert "suggests normal (nothing flagged)" in panel.ai_label.text()


def test_an_image_outside_the_intended_use_is_not_a_finding_until_read_anyway(
        qtbot, main_window, no_builtin_models, tmp_path, shared_data):  # noqa: F811
    window = main_window
    scope = {"modalities": ["CR", "DX"], "body_parts": ["CHEST"]}
    entry = install_mean_model(tmp_path / "models", name="chest-only", threshold=0.01,
                               intended_scope=scope)
    _choose(qtbot, window, entry)
    folder = tmp_path / "ct"
    folder.mkdir()
    ct = Path(shutil.copy(shared_data / "dicom" / "wg04" / "REF" / "CT1_UNC", folder / "ct.dcm"))
    read = _read(qtbot, window, ct)
    panel = window.ai.panel
    assert read.prediction.in_scope is False and read.prediction.offered == []
    assert panel.scope_label.isVisible() and "CT" in panel.scope_label.text()
    assert panel.read_anyway_button.isVisible() and not panel.visible_bars()
    assert panel.scope_label.text().startswith("Not read as a finding: Outside this model")
    assert not panel.finding_label.isVisible()
    assert _consumers(qtbot, window, folder)["batch_decision"] == \
        "not read (outside intended use)"
    with qtbot.waitSignal(window.ai.read_finished, timeout=30_000) as anyway:
        panel.read_anyway_button.click()
    prediction = anyway.args[0].prediction
    assert prediction.read_out_of_scope and prediction.flagged == ["finding"]
    assert panel.visible_bars() and not panel.read_anyway_button.isVisible()
    newest = AuditLog().rows()[0]
    assert newest["input_uid"] == prediction.input_uid and newest["read_out_of_scope"]
