"""The Preferences dialog: shows the session's settings, checks input, saves only what changed
through the session (which tells its subscribers), and never shows a value the file got wrong."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt

from medviewer.app.session import Session
from medviewer.gui.preferences_dialog import PreferencesDialog
from medviewer.settings import Settings, load_settings, save_settings, settings_path


@pytest.fixture
def session() -> Session:
    settings = Settings(reader_name="dr.lee", mouse_right_drag="pan", overlay_opacity=0.3,
                        ai_auto_run=False, retrieve_cache_dir="/srv/pacs")
    save_settings(settings)
    return Session()


@pytest.fixture
def dialog(qtbot, session) -> PreferencesDialog:
    widget = PreferencesDialog(session)
    qtbot.addWidget(widget)
    widget.show()
    return widget


def test_it_shows_the_sessions_settings(dialog):
    assert dialog.reader_edit.text() == "dr.lee"
    assert dialog.left_combo.currentData() == "window_level"
    assert dialog.right_combo.currentData() == "pan"
    assert dialog.opacity_spin.value() == 30
    assert not dialog.auto_check.isChecked() and dialog.corner_check.isChecked()
    assert dialog.retrieve_dir_edit.text() == "/srv/pacs"
    assert dialog.unit_combo.currentData() == "mm"
    assert dialog.save_button.isEnabled() and dialog.error_label.isHidden()


def test_saving_changes_the_session_tells_subscribers_and_writes_only_what_changed(
        dialog, session, qtbot):
    heard = []
    session.events.settings_changed.connect(heard.append)
    # Another window saves something meanwhile: it must survive this dialog's save.
    other = load_settings()
    other.default_model = "pneumonia-demo@1.3"
    save_settings(other)

    dialog.left_combo.setCurrentIndex(dialog.left_combo.findData("tool"))
    dialog.unit_combo.setCurrentIndex(dialog.unit_combo.findData("cm"))
    dialog.auto_check.setChecked(True)
    dialog.opacity_spin.setValue(60)
    dialog.pixel_cache_spin.setValue(2048)
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)

    assert dialog.result() == PreferencesDialog.DialogCode.Accepted
    assert heard == [session.settings]
    saved = load_settings()
    assert (saved.mouse_left_drag, saved.length_unit, saved.ai_auto_run) == ("tool", "cm", True)
    assert saved.overlay_opacity == pytest.approx(0.6) and saved.pixel_cache_mb == 2048
    assert saved.default_model == "pneumonia-demo@1.3"  # the other window's change is kept
    assert session.settings.length_unit == "cm"


def test_saving_without_changes_writes_nothing(dialog, session, qtbot):
    heard = []
    session.events.settings_changed.connect(heard.append)
    before = settings_path().read_bytes()
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert dialog.result() == PreferencesDialog.DialogCode.Accepted
    assert heard == [] and settings_path().read_bytes() == before


@pytest.mark.parametrize(("field", "text", "words"), [
    ("reader_edit", "   ", "reader name must be 1 to 200 characters"),
    ("retrieve_dir_edit", "relative/cache", "must be a full path"),
])
def test_wrong_input_is_explained_and_cannot_be_saved(dialog, session, field, text, words):
    getattr(dialog, field).setText(text)
    assert not dialog.save_button.isEnabled()
    assert dialog.error_label.isVisible() and words in dialog.error_label.text()
    dialog.save()  # Enter in a line edit ends here too: nothing is saved
    assert dialog.result() != PreferencesDialog.DialogCode.Accepted
    assert load_settings().reader_name == "dr.lee"
    getattr(dialog, field).setText("/srv/other" if field == "retrieve_dir_edit" else "dr.kim")
    assert dialog.save_button.isEnabled() and dialog.error_label.isHidden()


def test_a_file_where_a_folder_should_be_is_refused(dialog, tmp_path):
    file = tmp_path / "not-a-folder"
    file.write_text("x")
    dialog.retrieve_dir_edit.setText(str(file))
    assert not dialog.save_button.isEnabled() and "is a file" in dialog.error_label.text()


def test_restore_defaults_shows_them_and_saves_only_on_save(dialog, session, qtbot):
    qtbot.mouseClick(dialog.defaults_button, Qt.MouseButton.LeftButton)
    assert dialog.right_combo.currentData() == "zoom" and dialog.opacity_spin.value() == 45
    assert dialog.auto_check.isChecked() and dialog.retrieve_dir_edit.text() == ""
    assert dialog.reader_edit.text() == "dr.lee"  # who reads is not a preference
    assert load_settings().mouse_right_drag == "pan"
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    saved = load_settings()
    assert (saved.mouse_right_drag, saved.overlay_opacity, saved.retrieve_cache_dir) == (
        "zoom", 0.45, "")
    assert saved.reader_name == "dr.lee"


def test_cancel_saves_nothing(dialog, session, qtbot):
    heard = []
    session.events.settings_changed.connect(heard.append)
    dialog.unit_combo.setCurrentIndex(dialog.unit_combo.findData("cm"))
    dialog.reject()
    assert heard == [] and load_settings().length_unit == "mm"
    assert session.settings.length_unit == "mm"


def test_a_wrong_value_in_the_file_never_reaches_a_widget(qtbot):
    settings_path().write_text(json.dumps({"overlay_opacity": "heavy", "mouse_wheel": 3,
                                           "pixel_cache_mb": -5}), encoding="utf-8")
    session = Session()
    assert len(session.settings_notices) == 3
    dialog = PreferencesDialog(session)
    qtbot.addWidget(dialog)
    assert dialog.opacity_spin.value() == 45
    assert dialog.wheel_combo.currentData() == "frames"
    assert dialog.pixel_cache_spin.value() == 1024
    assert dialog.save_button.isEnabled()


def test_a_settings_file_that_cannot_be_written_is_said_and_the_values_still_apply(qtbot):
    path = settings_path()
    path.unlink(missing_ok=True)
    path.mkdir()  # a folder where the file should be: every save fails, even as root
    session = Session()
    dialog = PreferencesDialog(session)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.unit_combo.setCurrentIndex(dialog.unit_combo.findData("cm"))
    dialog.save()
    assert dialog.result() != PreferencesDialog.DialogCode.Accepted
    assert "could not be saved" in dialog.error_label.text()
    assert "apply until MedViewer closes" in dialog.error_label.text()
    assert session.settings.length_unit == "cm"
    dialog.save()  # nothing more to save: the dialog closes
    assert dialog.result() == PreferencesDialog.DialogCode.Accepted


def test_the_cache_settings_are_the_ones_the_viewer_uses(qtbot, main_window, tmp_path):
    """Preferences' cache sizes and folder reach the decoded-image cache (when an image is
    shown) and the PACS panel's retrieve cache."""
    from medviewer.dicom.instance import pixel_cache
    from medviewer.pacs.cache import default_cache_root
    from tests.gui.conftest import pydicom_file

    session = main_window.session
    before = pixel_cache.budget_bytes
    try:
        session.update_settings(pixel_cache_mb=256)
        main_window.open_paths([pydicom_file("MR_small.dcm")])
        qtbot.waitUntil(lambda: main_window.image_view.instance is not None, timeout=10_000)
        assert pixel_cache.budget_bytes == 256 * 1024 * 1024
    finally:
        pixel_cache.set_budget(before)
    panel = main_window.show_pacs_panel()
    assert panel.cache().root == default_cache_root()
    session.update_settings(retrieve_cache_dir=str(tmp_path / "studies"), retrieve_cache_mb=2048)
    assert panel.cache().root == tmp_path / "studies"
    assert panel.cache().limit_bytes == 2048 * 1024 * 1024

