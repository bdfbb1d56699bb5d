"""The Studies list's right-click menu, closing one study or series, and key images, in the
main window with real files, the real key images file and real workers."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtWidgets import QApplication, QMessageBox

from medviewer.app.key_images import default_key_images_path
from medviewer.gui.main_window import MainWindow
from medviewer.gui.study_browser import KEY_IMAGE_MARK

from .test_reading_room import SAMPLE, dated_copy, open_sample


def two_studies(tmp_path: Path) -> tuple[Path, Path, Path]:
    folder = tmp_path / "studies"
    current = dated_copy(folder, SAMPLE[0], "20240301")
    prior = dated_copy(folder, SAMPLE[3], "20230110")
    return folder, current.resolve(), prior.resolve()


def texts(menu) -> list[str]:
    return [a.text().replace("&", "") for a in menu.actions() if not a.isSeparator()]


def trigger(menu, name: str) -> None:
    for action in menu.actions():
        if action.objectName() == name or (action.menu() is not None
                                           and action.menu().objectName() == name):
            action.trigger()
            return
    raise AssertionError(f"no {name} in {texts(menu)}")


def test_the_menu_of_a_study_a_series_and_an_image(qtbot, main_window):
    open_sample(qtbot, main_window)
    browser = main_window.study_browser
    menus = main_window.study_tools.menu
    image = browser.item_for(SAMPLE[4])
    series, study = image.parent(), image.parent().parent()
    study_menu = menus.build(study)
    assert texts(study_menu) == ["Show in viewport", "Compare with prior",
                                 "Key images of this study (0)", "Close this study"]
    assert texts(menus.build(series))[-2:] == ["Close this series", "Close this study"]
    image_menu = menus.build(image)
    assert "Flag as key image" in texts(image_menu)
    assert texts(image_menu)[-2:] == ["Close this image", "Close this study"]
    main_window.grid.set_layout("2x2")
    where = next(a.menu() for a in menus.build(series).actions()
                 if a.menu() is not None and a.menu().objectName() == "showInViewport")
    assert texts(where) == ["Viewport 1 (top left)", "Viewport 2 (top right)",
                            "Viewport 3 (bottom left)", "Viewport 4 (bottom right)"]
    target = main_window.grid.views()[3]
    with qtbot.waitSignal(target.image_shown, timeout=10_000):
        where.actions()[3].trigger()
    assert main_window.grid.viewports[3].series == SAMPLE[3:6]
    assert main_window.grid.active_view is target


def test_right_clicking_a_row_pops_its_menu_up(qtbot, main_window):
    open_sample(qtbot, main_window)
    tree = main_window.study_browser.tree
    item = main_window.study_browser.item_for(SAMPLE[1])
    tree.scrollToItem(item)
    tree.customContextMenuRequested.emit(tree.visualItemRect(item).center())
    qtbot.waitUntil(lambda: QApplication.activePopupWidget() is not None, timeout=5_000)
    popup = QApplication.activePopupWidget()
    assert popup.objectName() == "studyBrowserMenu" and "Flag as key image" in texts(popup)
    popup.close()


def test_closing_one_study_keeps_the_other_open(qtbot, main_window, tmp_path):
    folder, current, prior = two_studies(tmp_path)
    open_sample(qtbot, main_window, folder)
    browser = main_window.study_browser
    assert main_window.image_view.instance.path == prior  # the earlier study is listed first
    study = browser.ancestor(browser.item_for(prior), "study")
    trigger(main_window.study_tools.menu.build(study), "browserClose")
    assert [r.path for r in browser.records()] == [current]
    assert browser.tree.topLevelItemCount() == 1
    assert [r.path for r in main_window.session.open_records()] == [current]
    assert main_window.image_view.instance is None  # it showed the closed study
    assert main_window.windowTitle() == "MedViewer"
    assert main_window.session.labelling.known_paths == [current]
    assert main_window.statusBar().currentMessage() == "Closed 1 image; the rest stays open."
    # The other study works as before; File > Close study closes it too.
    with qtbot.waitSignal(main_window.image_view.image_shown, timeout=10_000):
        browser.select_path(current)
    action = main_window.study_tools.close_study_action
    assert action in main_window.menus["file"].actions()
    assert action.shortcut().toString() == "Ctrl+W"
    action.trigger()
    assert browser.records() == [] and main_window.session.catalogs == []
    # Opening the folder again brings both back.
    open_sample(qtbot, main_window, folder)
    assert sorted(r.path for r in browser.records()) == sorted([current, prior])


def test_closing_one_series_leaves_the_study_and_its_other_series(qtbot, main_window):
    open_sample(qtbot, main_window)
    browser = main_window.study_browser
    main_window.grid.set_layout("1x2")
    second = main_window.grid.views()[1]
    with qtbot.waitSignal(second.image_shown, timeout=10_000):
        second.open_path(SAMPLE[4])
    series = browser.item_for(SAMPLE[4]).parent()
    trigger(main_window.study_tools.menu.build(series), "browserClose")
    assert [r.path for r in browser.records()] == SAMPLE[:3]
    assert second.instance is None  # the viewport that showed it
    assert main_window.image_view.instance.path == SAMPLE[0]  # the other series stays
    [series_left] = main_window.session.catalogs[0].patients[0].studies[0].series
    assert [r.path for r in series_left.instances] == SAMPLE[:3]


def test_k_flags_a_key_image_marked_in_the_browser_and_listed_per_study(qtbot, main_window):
    open_sample(qtbot, main_window)
    browser = main_window.study_browser
    flags = main_window.key_images
    assert main_window.study_tools.key_image_action.shortcut().toString() == "K"
    main_window.study_tools.key_image_action.trigger()
    qtbot.waitUntil(lambda: not flags.busy, timeout=10_000)
    row = browser.item_for(SAMPLE[0])
    assert row.text(0).startswith(f"{KEY_IMAGE_MARK} Image 1")
    study = browser.ancestor(row, "study")
    assert study.text(0).startswith(f"{KEY_IMAGE_MARK}1  ")
    assert main_window.statusBar().currentMessage() == \
        "S01_I01.dcm is a key image of its study now (1 in the study)."
    saved = json.loads(default_key_images_path().read_text())
    [(study_uid, entries)] = saved["studies"].items()
    assert entries[0]["image"] == str(main_window.image_view.instance.header.SOPInstanceUID)
    listing = next(a.menu() for a in main_window.study_tools.menu.build(study).actions()
                   if a.menu() is not None and a.menu().objectName() == "keyImageList")
    assert texts(listing) == ["S01_I01.dcm"]
    # Flag another from the browser's menu; the list keeps the order they were flagged.
    trigger(main_window.study_tools.menu.build(browser.item_for(SAMPLE[4])),
            "browserFlagKeyImage")
    qtbot.waitUntil(lambda: not flags.busy, timeout=10_000)
    assert study.text(0).startswith(f"{KEY_IMAGE_MARK}2  ")
    assert flags.by_study()[study_uid] == [SAMPLE[0], SAMPLE[4]]

    # A new window marks them once the study is open again.
    second = MainWindow()
    qtbot.addWidget(second)
    try:
        open_sample(qtbot, second)
        qtbot.waitUntil(lambda: not second.key_images.busy, timeout=10_000)
        qtbot.waitUntil(lambda: second.study_browser.key_images == {SAMPLE[0], SAMPLE[4]},
                        timeout=10_000)
        assert second.study_browser.item_for(SAMPLE[4]).text(0).startswith(KEY_IMAGE_MARK)
    finally:
        second.close()
    # Unflagging takes the mark away.
    trigger(main_window.study_tools.menu.build(browser.item_for(SAMPLE[0])),
            "browserFlagKeyImage")
    qtbot.waitUntil(lambda: not flags.busy, timeout=10_000)
    assert not browser.item_for(SAMPLE[0]).text(0).startswith(KEY_IMAGE_MARK)
    assert study.text(0).startswith(f"{KEY_IMAGE_MARK}1  ")


def test_compare_with_prior_from_the_browser_menu(qtbot, main_window, tmp_path):
    folder, current, prior = two_studies(tmp_path)
    open_sample(qtbot, main_window, folder)
    browser = main_window.study_browser
    study = browser.ancestor(browser.item_for(current), "study")
    trigger(main_window.study_tools.menu.build(study), "browserComparePrior")
    beside = main_window.grid.views()[1]
    qtbot.waitUntil(lambda: beside.instance is not None
                    and main_window.image_view.instance is not None
                    and main_window.image_view.instance.path == current, timeout=10_000)
    assert beside.instance.path == prior
    # The prior's own menu: nothing earlier is open, so the PACS is offered.
    older = browser.ancestor(browser.item_for(prior), "study")
    trigger(main_window.study_tools.menu.build(older), "browserComparePrior")
    assert main_window.findChild(QMessageBox, "noPriorBox").isVisible()
