"""Every panel is built with a session, a minimal shell and the widgets it draws on: no
MainWindow. What the main window would do (forward the view's image to the session, open what
the session asks for) is done here by the test, so each panel's contract is exactly the
session's events and the shell protocol.

Real components: a real label store file, a real ONNX model from tests/inference, real
X-ray images, the real worker threads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medviewer.app.labelling import AiSuggestion
from medviewer.app.session import Session
from medviewer.dicom.catalog import index_path
from medviewer.gui.image_view import ImageView
from medviewer.gui.label_filter import StudyFilter
from medviewer.gui.label_panel import install_labeling
from medviewer.gui.results_panel import install_ai
from medviewer.gui.shell import StandaloneShell
from medviewer.gui.study_browser import StudyBrowser
from medviewer.jobs import run_to_end
from medviewer.labels.store import LabelStore

from .ai_helpers import grey_png, install_mean_model, no_builtin_models  # noqa: F401
from .test_label_panel import kermany_folder


@pytest.fixture
def shell(qtbot):
    shell = StandaloneShell()
    view = ImageView()
    shell.setCentralWidget(view)
    shell.view = view
    shell.resize(1000, 700)
    shell.show()
    qtbot.waitExposed(shell)
    yield shell
    shell.shut_down(10_000)
    view.wait_for_workers(10_000)
    shell.close()
    shell.deleteLater()


def connect_view(session: Session, view: ImageView) -> None:
    """What the main window does: the view's image is the session's image; the session's
    requests to show an image are answered by opening it."""
    view.image_shown.connect(session.show_image)
    view.load_failed.connect(lambda _sentence: session.image_failed())
    session.events.show_requested.connect(view.open_path)


def open_catalog(session: Session, folder: Path):
    catalog = run_to_end(index_path(folder))
    session.add_catalog(catalog)
    return catalog


def test_label_panel_labels_and_walks_with_only_a_session_and_a_shell(
        qtbot, shell, shared_data, tmp_path):
    store_path = tmp_path / "labels.sqlite"
    with LabelStore(store_path, reader="setup") as store:
        store.create_label_set("pneumonia", ["normal", "pneumonia"])
    session = Session(label_store_path=store_path)
    connect_view(session, shell.view)
    panel = install_labeling(shell, session, shell.view)
    assert "labels" in shell.docks and shell.menu("labels").actions()
    qtbot.waitUntil(lambda: panel.label_set is not None, timeout=10_000)

    folder = kermany_folder(shared_data, tmp_path / "kermany", per_class=2)
    catalog = open_catalog(session, folder)
    paths = [Path(r.path) for r in catalog.instances()]
    first = session.labelling.paths_opened_from(folder)[0]
    with qtbot.waitSignal(shell.view.image_shown, timeout=20_000):
        shell.view.open_path(first)
    qtbot.waitUntil(lambda: panel.current_key is not None and not panel.busy, timeout=10_000)

    panel.press_class("pneumonia")
    qtbot.waitUntil(lambda: not panel.busy, timeout=10_000)
    with LabelStore(store_path, reader="inspector") as store:
        label = store.label_for("pneumonia", panel.current_key, reader=session.labelling.reader)
    assert label is not None and label.classes == ("pneumonia",)
    assert panel.saved_label.text().startswith("✓ Saved: pneumonia (manual)")

    # N asks the session to show the next image of the folder; this shell answers it.
    with qtbot.waitSignal(shell.view.image_shown, timeout=20_000):
        panel.go(1)
    assert panel.current_path == session.labelling.paths_opened_from(folder)[1]
    assert panel.progress_label.text() == f"Labelled 1 / {len(paths)} in {folder.name}"

    # An AI read reaches the panel through the session, never through another panel.
    session.labelling.set_suggestion(panel.current_path, AiSuggestion(
        "demo@1", {"normal": 0.2, "pneumonia": 0.8}, ("pneumonia",), ("pneumonia",)))
    assert "suggests pneumonia" in panel.ai_label.text()
    assert panel.accept_button.isEnabled()


def test_study_filter_follows_the_labelling_state(qtbot, shell, shared_data, tmp_path):
    session = Session(label_store_path=tmp_path / "labels.sqlite")
    browser = StudyBrowser()
    study_filter = StudyFilter(session.labelling, browser)
    browser.layout().insertWidget(0, study_filter)
    shell.add_panel("studies", "Studies", browser)
    folder = kermany_folder(shared_data, tmp_path / "kermany", per_class=1)
    catalog = open_catalog(session, folder)
    browser.add_catalog(catalog)
    qtbot.waitUntil(lambda: all(browser.item_for(r.path) is not None
                                for r in catalog.instances()), timeout=10_000)
    # Without a label set the filter shows everything and cannot be changed.
    study_filter.apply()
    assert not study_filter.combo.isEnabled()
    assert len(study_filter.visible_paths()) == 2
    browser.wait_for_workers(10_000)


def test_ai_panel_reads_the_shown_image_and_tells_the_session(
        qtbot, shell, no_builtin_models, tmp_path):  # noqa: F811 - a fixture
    entry = install_mean_model(tmp_path / "models")
    session = Session(label_store_path=tmp_path / "labels.sqlite")
    connect_view(session, shell.view)
    heard: list[object] = []
    session.ai.events.read_finished.connect(heard.append)
    ai = install_ai(shell, session, shell.view)
    assert {"results", "batch"} <= set(shell.docks)
    with qtbot.waitSignal(ai.model_ready, timeout=30_000):
        ai.choose_model(entry.key)
    assert session.ai.entry.key == entry.key and session.ai.model is not None
    assert session.settings.default_model == entry.key

    bright = grey_png(tmp_path / "bright.png", np.full((32, 32), 191, np.uint8))
    with qtbot.waitSignal(ai.read_finished, timeout=30_000):
        shell.view.open_path(bright)
    assert heard and heard[-1] is session.ai.read
    assert session.ai.read.prediction.flagged == ["finding"]
    suggestion = session.labelling.suggestion(bright)
    assert suggestion is not None and suggestion.probabilities["finding"] == pytest.approx(
        191 / 255, abs=1e-5)
    assert ai.panel.finding_label.text().startswith("Flagged: finding")

    # Closing what is open clears the read everywhere.
    session.close_all()
    assert session.ai.read is None and not ai.panel.visible_bars()
