"""What the window does with the studies it has open, beyond showing them: close one study
or series (File > Close study, Ctrl+W), flag key images (K; ★ in the Studies list), and the
Studies list's right-click menu (show a row in a viewport, compare it with its prior, flag a
key image, list a study's key images, close a study or series).

:class:`StudyTools` is built by the main window (the composition root) with its shell, the
session, the browser and the reading room; every entry of the right-click menu does what a
menu or key of the window also does, on the row under the pointer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QMenu, QTreeWidgetItem

from medviewer.gui.key_image_flags import KeyImageFlags
from medviewer.gui.lazy import LazyModule
from medviewer.gui.widgets import window_action

if TYPE_CHECKING:
    from medviewer.app import priors
    from medviewer.app.session import Session
    from medviewer.gui.reading_room import ReadingRoom
    from medviewer.gui.study_browser import StudyBrowser
else:
    priors = LazyModule("medviewer.app.priors")

VIEWPORT_NAMES = {"1x1": ("",), "1x2": ("left", "right"), "2x1": ("top", "bottom"),
                  "2x2": ("top left", "top right", "bottom left", "bottom right")}
CLOSE_TEXT = {"patient": "Close this &patient's studies", "study": "&Close this study",
              "series": "Close this &series", "instance": "Close this &image"}


def study_row(browser: StudyBrowser, item: QTreeWidgetItem) -> QTreeWidgetItem:
    """The study row a row belongs to; a plain-image folder row (no study) is its own."""
    study = browser.ancestor(item, "study")
    if study is not None:
        return study
    while item.parent() is not None and browser.kind_of(item) != "patient":
        item = item.parent()
    return item


class StudyBrowserMenu(QObject):
    """Builds the browser's menu for the row right-clicked (see the module docstring)."""

    def __init__(self, browser: StudyBrowser, room: ReadingRoom, key_images: KeyImageFlags,
                 show_path: Callable[[Path], None],
                 close_images: Callable[[list[Path]], object],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.browser = browser
        self.room = room
        self.key_images = key_images
        self.show_path = show_path
        self.close_images = close_images
        browser.menu_requested.connect(self.popup)

    def popup(self, item: QTreeWidgetItem, position) -> QMenu:
        menu = self.build(item)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(position)
        return menu

    def build(self, item: QTreeWidgetItem) -> QMenu:
        browser = self.browser
        kind = browser.kind_of(item)
        paths = browser.paths_of(item)
        menu = QMenu(browser)
        menu.setObjectName("studyBrowserMenu")
        where = menu.addMenu("Show in &viewport")
        where.setObjectName("showInViewport")
        grid = self.room.grid
        names = VIEWPORT_NAMES[grid.layout_name]
        for index, viewport in enumerate(grid.visible_viewports()):
            title = f"Viewport &{index + 1}" + (f" ({names[index]})" if names[index] else "")
            action = where.addAction(title)
            action.triggered.connect(
                lambda _c=False, v=viewport.view: self._show_in(v, paths))
        where.setEnabled(bool(paths))
        prior = menu.addAction("Compare with &prior")
        prior.setObjectName("browserComparePrior")
        prior.setToolTip("Show this study's first image, and the same patient's most recent "
                         "earlier study beside it")
        prior.triggered.connect(lambda _c=False: self.compare_with_prior(item))
        prior.setEnabled(kind != "patient" and bool(paths))
        record = browser.record_of(item)
        if record is not None:
            flagged = record.path in browser.key_images
            flag = menu.addAction("Remove the &key image flag" if flagged
                                  else "Flag as &key image")
            flag.setObjectName("browserFlagKeyImage")
            flag.triggered.connect(lambda _c=False, p=record.path: self.key_images.toggle(p))
        self._add_key_image_list(menu, item)
        menu.addSeparator()
        close = menu.addAction(CLOSE_TEXT.get(kind, "&Close"))
        close.setObjectName("browserClose")
        close.triggered.connect(lambda _c=False: self.close_images(paths))
        if kind in ("series", "instance") and browser.ancestor(item, "study") is not None:
            study_paths = browser.paths_of(browser.ancestor(item, "study"))
            whole = menu.addAction(CLOSE_TEXT["study"].replace("&", ""))
            whole.setObjectName("browserCloseStudy")
            whole.triggered.connect(lambda _c=False: self.close_images(study_paths))
        return menu

    def _add_key_image_list(self, menu: QMenu, item: QTreeWidgetItem) -> None:
        study = study_row(self.browser, item)
        inside = set(self.browser.paths_of(study))
        flagged = [p for p in self.browser.paths_of(study) if p in self.browser.key_images]
        listing = menu.addMenu(f"Key images of this study ({len(flagged)})")
        listing.setObjectName("keyImageList")
        for path in flagged:
            action = listing.addAction(path.name)
            action.setToolTip(str(path))
            action.triggered.connect(lambda _c=False, p=path: self.show_path(p))
        listing.setEnabled(bool(flagged) and bool(inside))

    def _show_in(self, view, paths: list[Path]) -> None:
        """The primary view shows a row the way the browser does (selected), so the panels
        follow; another viewport shows the row's images as its series."""
        grid = self.room.grid
        grid.set_active(view)
        if view is grid.primary_view and len(paths) == 1:
            self.show_path(paths[0])
        else:
            grid.show_paths(view, paths)

    def compare_with_prior(self, item: QTreeWidgetItem) -> None:
        """Show the row's first image in the active viewport and its study's prior beside."""
        browser = self.browser
        paths = browser.paths_of(item)
        study_item = browser.ancestor(item, "study")
        patient_item = browser.ancestor(item, "patient")
        if not paths or study_item is None or patient_item is None:
            self.room.grid.message.emit("A plain image has no study to compare with a prior.")
            return
        study, patient = browser.node_of(study_item), browser.node_of(patient_item)
        first = browser.record_of(browser.item_for(paths[0]))
        key = priors.StudyKey(patient.patient_id, patient.issuer, study.uid, study.date,
                              study.time, first.modality if first is not None else "")
        grid = self.room.grid
        if grid.active_view is grid.primary_view:
            self.show_path(paths[0])
        else:
            grid.show_paths(grid.active_view, [paths[0]])
        grid.compare_with_prior_of(key)


class StudyTools(QObject):
    """Closing part of what is open, key images and the browser's menu, in one window."""

    def __init__(self, shell, session: Session, browser: StudyBrowser, room: ReadingRoom) -> None:
        super().__init__(shell.dialog_parent())
        self.shell = shell
        self.session = session
        self.browser = browser
        self.room = room
        window = shell.dialog_parent()
        flags = self.key_images = KeyImageFlags(
            session, lambda sentence: shell.show_status(sentence, 8000), parent=self)
        flags.changed.connect(self._mark_key_images)
        shell.add_shutdown_step(flags.wait, order=20)
        self.menu = StudyBrowserMenu(browser, room, flags, self._show_path, self.close_images,
                                     self)
        self.key_image_action = window_action(
            window, "Flag as &key image", self.flag_key_image,
            "Flag (or unflag) the active image as a key image of its study; the Studies "
            "list marks it ★")
        self.key_image_action.setShortcut(QKeySequence("K"))
        self.key_image_action.setObjectName("keyImageAction")
        shell.menu("view").insertAction(room.grid.actions_by_name["compare_prior"],
                                        self.key_image_action)
        self.close_study_action = window_action(
            window, "Close s&tudy", self.close_study,
            "Close the study of the active image; other studies stay open")
        self.close_study_action.setShortcut(QKeySequence("Ctrl+W"))
        self.close_study_action.setObjectName("closeStudyAction")

    def _show_path(self, path: Path) -> None:
        self.session.request_show(path)

    def catalog_opened(self) -> None:
        """New rows: mark their key images (reading the flags the first time)."""
        self.key_images.ensure_read()
        self._mark_key_images()

    def _mark_key_images(self) -> None:
        self.browser.set_key_images(self.key_images.flagged_paths())

    def flag_key_image(self) -> None:
        """K: flag or unflag the active viewport's image (its frame on screen)."""
        view = self.room.active_view
        if view.instance is None:
            self.shell.show_status("Open an image to flag it as a key image.")
            return
        self.key_images.toggle(view.instance, view.frame)

    def close_study(self) -> None:
        """File > Close study: the active image's study (a plain image: its folder row)."""
        view = self.room.active_view
        item = self.browser.item_for(view.instance.path) if view.instance else None
        if item is None:
            self.shell.show_status("The active viewport shows no image of the Studies list "
                                   "to close.")
            return
        self.close_images(self.browser.paths_of(study_row(self.browser, item)))

    def close_images(self, paths: list[Path]) -> list[Path]:
        """Close these images and keep the rest open: the viewports showing them show
        nothing, their rows leave the browser, the session forgets them."""
        gone = {Path(p) for p in paths}
        self.room.clear_views(gone)
        self.browser.remove_paths(gone)
        closed = self.session.close_images(gone)
        if closed:
            self.shell.show_status(f"Closed {len(closed)} image"
                                   f"{'' if len(closed) == 1 else 's'}; the rest stays open.")
        return closed
