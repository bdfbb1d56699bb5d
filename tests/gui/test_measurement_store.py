"""Measurements kept with their image in the real label store, through the label panel's
store thread: written as the reader measures, shown again when the image is reopened,
updated by a calibration, deleted, undone and redone, exported from the Labels menu."""

from __future__ import annotations

import csv

from medviewer.labels.store import ImageRef, LabelStore

from .test_reading_room import SAMPLE, open_sample, show


def settle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: window.label_panel.client.pending == 0, timeout=20_000)


def stored_rows(window, instance) -> list:
    with LabelStore(window.label_panel.client.path, reader="someone else") as store:
        return store.measurements(ImageRef.from_instance(instance).key)


def test_a_measurement_is_stored_with_its_image_and_shown_again(qtbot, main_window):
    open_sample(qtbot, main_window)
    view = main_window.image_view
    first = view.instance
    box = view.measures.add("rectangle", [(20.0, 20.0), (60.0, 50.0)]).record
    note = view.measures.add("text", [(30.0, 30.0)], label="check the tube").record
    settle(qtbot, main_window)
    rows = stored_rows(main_window, first)
    assert [(r.kind, r.reader) for r in rows] == [("rectangle", main_window.label_panel.reader),
                                                  ("text", main_window.label_panel.reader)]
    assert rows[0].values["mean"] == box.values["mean"] and rows[1].text == "check the tube"

    with qtbot.waitSignal(view.image_shown, timeout=10_000):
        main_window.study_browser.select_path(SAMPLE[1])
    settle(qtbot, main_window)
    assert view.measurements == [] and len(stored_rows(main_window, first)) == 2
    with qtbot.waitSignal(view.image_shown, timeout=10_000):
        main_window.study_browser.select_path(SAMPLE[0])
    settle(qtbot, main_window)
    assert view.measures.records() == [box, note]
    assert view.measurements[1].graphic.caption.toPlainText() == "check the tube"


def test_calibrating_updates_the_stored_values_and_deleting_removes_them(qtbot, main_window):
    open_sample(qtbot, main_window)
    view = main_window.image_view
    shown = view.measures.add("distance", [(10.0, 10.0), (110.0, 10.0)])
    settle(qtbot, main_window)
    view.measures.calibrate((10.0, 10.0), (60.0, 10.0), 25.0)  # 0.5 mm per pixel
    settle(qtbot, main_window)
    [row] = stored_rows(main_window, view.instance)
    assert row.spacing_source == "calibrated" and row.values["length_mm"] == 50.0
    assert row.id is not None
    view.measures.remove(view.measurements[0])
    settle(qtbot, main_window)
    assert stored_rows(main_window, view.instance) == []
    assert shown.record.kind == "distance"


def test_undo_and_redo_bring_a_deleted_measurement_back_and_take_it_away(qtbot, main_window):
    open_sample(qtbot, main_window)
    view = main_window.image_view
    record = view.measures.add("angle", [(10.0, 60.0), (60.0, 60.0), (60.0, 10.0)]).record
    settle(qtbot, main_window)
    view.clear_measurements()  # Shift+Del: every measurement of this image
    settle(qtbot, main_window)
    assert stored_rows(main_window, view.instance) == [] and view.measurements == []

    undo = main_window.measurement_store.undo_action
    assert undo in main_window.reading.tools_menu.actions()
    assert [k.toString() for k in undo.shortcuts()] == ["Ctrl+Alt+Z"]
    undo.trigger()
    settle(qtbot, main_window)
    assert view.measures.records() == [record]  # read back onto the image on screen
    assert main_window.statusBar().currentMessage().startswith("Undone: a measurement change "
                                                               "on S01_I01.dcm")
    main_window.measurement_store.redo_action.trigger()
    settle(qtbot, main_window)
    assert view.measurements == [] and stored_rows(main_window, view.instance) == []
    # Labelling's own undo (Ctrl+Z) is not measurement undo: the label history is separate.
    menu = view.build_context_menu((5.0, 5.0))
    tools = next(a.menu() for a in menu.actions() if a.text() == "&Tools")
    assert undo in tools.actions()
    menu.deleteLater()


def test_measurements_in_another_viewport_are_kept_too(qtbot, main_window):
    open_sample(qtbot, main_window)
    main_window.grid.set_layout("1x2")
    second = main_window.grid.views()[1]
    show(qtbot, second, SAMPLE[4])
    second.measures.add("cobb", [(10.0, 10.0), (100.0, 20.0), (10.0, 100.0), (100.0, 80.0)])
    settle(qtbot, main_window)
    [row] = stored_rows(main_window, second.instance)
    assert row.kind == "cobb"
    show(qtbot, second, SAMPLE[5])
    settle(qtbot, main_window)
    show(qtbot, second, SAMPLE[4])
    settle(qtbot, main_window)
    assert [r.kind for r in second.measures.records()] == ["cobb"]


def test_labels_export_measurements_writes_the_csv(qtbot, main_window, tmp_path):
    open_sample(qtbot, main_window)
    view = main_window.image_view
    view.measures.add("ellipse", [(20.0, 20.0), (60.0, 50.0)])
    settle(qtbot, main_window)
    action = main_window.measurement_store.export_action
    assert action in main_window.menus["labels"].actions()
    dialog = main_window.measurement_store.show_export_dialog()
    target = tmp_path / "out.csv"
    dialog.selectFile(str(target))
    dialog.accept()
    settle(qtbot, main_window)
    with target.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["kind"] for r in rows] == ["ellipse"] and float(rows[0]["mean"]) > 0
    assert main_window.statusBar().currentMessage() == f"Wrote 1 measurement to {target}."
