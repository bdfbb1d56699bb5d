"""The de-identify dialog, the mask editor and the dataset export dialog, driven as a user
would: real files, real jobs on worker threads, progress and the report."""

from __future__ import annotations


from PySide6.QtCore import QPoint, Qt

from medviewer.gui.dataset_dialog import DatasetExportDialog
from medviewer.gui.deid_dialog import DeidDialog
from medviewer.gui.mask_editor import MaskEditor
from medviewer.labels.identity import resolve_image
from medviewer.labels.store import LabelStore
from tests.dicom.deid_helpers import US_IMAGE, core_dataset, write


def test_deid_dialog_runs_the_job_and_reports(qtbot, tmp_path):
    write(core_dataset(), tmp_path / "in" / "ct.dcm")
    us = core_dataset(sop_class=US_IMAGE, modality="US", instance=2)
    write(us, tmp_path / "in" / "us.dcm")
    dialog = DeidDialog([tmp_path / "in"])
    qtbot.addWidget(dialog)
    dialog.output.setText(str(tmp_path / "out"))
    dialog.key_file.setText(str(tmp_path / "k.key"))
    dialog.start()
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=20_000)
    qtbot.waitUntil(lambda: dialog.start_button.isEnabled(), timeout=5_000)
    assert dialog.result.written == 1 and len(dialog.result.refused) == 1
    text = dialog.report.toPlainText()
    assert "Refused 1 files" in text and "us.dcm" in text and "Patient's Name" in text
    assert (tmp_path / "out" / "DICOMDIR").is_file()
    dialog.close()


def test_deid_dialog_asks_for_inputs_and_output(qtbot):
    dialog = DeidDialog()
    qtbot.addWidget(dialog)
    dialog.start()
    assert "Add at least one input" in dialog.error.text()


def test_mask_editor_draws_rectangles_in_image_pixels(qtbot, tmp_path):
    path = write(core_dataset(rows=40, columns=60), tmp_path / "us.dcm")
    editor = MaskEditor(path)
    qtbot.addWidget(editor)
    editor.show()
    qtbot.waitUntil(lambda: editor.canvas.image is not None, timeout=10_000)
    canvas = editor.canvas
    target = canvas._target()
    start = QPoint(int(target.x() + 1), int(target.y() + 1))
    end = QPoint(int(target.x() + target.width() / 2), int(target.y() + target.height() / 4))
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(canvas, end)
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=end)
    mask = editor.mask()
    assert mask is not None and (mask.rows, mask.columns) == (40, 60)
    (rect,) = mask.rectangles
    assert rect.x <= 1 and rect.y <= 1 and 28 <= rect.width <= 31 and 9 <= rect.height <= 11
    assert editor.list.count() == 1
    editor.accept()


def test_dataset_dialog_exports(qtbot, tmp_path):
    store_path = tmp_path / "labels.sqlite"
    with LabelStore(store_path, reader="alice") as store:
        store.create_label_set("chest", ["normal", "abnormal"])
        for number in range(8):
            ds = core_dataset(patient_id=f"PID-{number + 1}", instance=1)
            image = resolve_image(write(ds, tmp_path / "img" / f"{number}.dcm"))
            store.set_label("chest", image, "abnormal" if number % 2 else "normal")
    dialog = DatasetExportDialog(store_path, "chest")
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.label_set.count() == 1, timeout=10_000)
    dialog.output.setText(str(tmp_path / "dataset"))
    dialog.val.setValue(0.25)
    dialog.test.setValue(0.25)
    dialog.start()
    qtbot.waitUntil(lambda: dialog.result is not None or bool(dialog.error.text()), timeout=20_000)
    assert dialog.error.text() == ""
    assert dialog.result.images == 8 and dialog.result.deidentified
    assert "train:" in dialog.report.toPlainText()
    assert (tmp_path / "dataset" / "manifest.json").is_file()
    qtbot.waitUntil(lambda: dialog.start_button.isEnabled(), timeout=5_000)
    dialog.close()


def test_deid_dialog_offers_every_option_and_excludes_contradictions(qtbot, tmp_path):
    from medviewer.dicom.deid.profile import OPTIONS

    write(core_dataset(), tmp_path / "in" / "ct.dcm")
    dialog = DeidDialog([tmp_path / "in"])
    qtbot.addWidget(dialog)
    assert set(dialog.option_boxes) == set(OPTIONS)
    assert dialog.chosen_options() == {"retain-modified-dates"}
    dialog.option_boxes["retain-full-dates"].setChecked(True)  # dates kept, not shifted
    assert dialog.chosen_options() == {"retain-full-dates"}
    dialog.option_boxes["retain-modified-dates"].setChecked(True)
    assert dialog.chosen_options() == {"retain-modified-dates"}
    for name in ("clean-structured-content", "clean-graphics", "retain-safe-private",
                 "retain-institution-identity"):
        dialog.option_boxes[name].setChecked(True)
    dialog.output.setText(str(tmp_path / "out"))
    dialog.start()
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=20_000)
    qtbot.waitUntil(lambda: dialog.start_button.isEnabled(), timeout=5_000)
    assert set(dialog.result.profile_options) == {
        "retain-modified-dates", "clean-structured-content", "clean-graphics",
        "retain-safe-private", "retain-institution-identity"}
    assert dialog.result.written == 1
    dialog.close()


def test_closing_the_deid_dialog_mid_job_cancels_and_leaves_nothing(qtbot, tmp_path):
    for number in range(40):
        write(core_dataset(instance=number + 1), tmp_path / "in" / f"{number}.dcm")
    dialog = DeidDialog([tmp_path / "in"])
    qtbot.addWidget(dialog)
    dialog.output.setText(str(tmp_path / "out"))
    dialog.start()
    assert dialog.cancel_button.isEnabled()
    dialog.reject()  # Close while the job runs: it is cancelled, not left writing
    assert not dialog.worker.is_running()
    assert not (tmp_path / "out").exists()
