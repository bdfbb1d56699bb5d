"""What a panel may ask of the window that hosts it: the shell protocol.

A panel is built with ``(session, shell)``: the Qt-free :class:`~medviewer.app.session.Session`
for state and events, and a :class:`Shell` for the few things only the hosting window can do
(status bar, menus, docks, a parent for dialogs, close-time questions and shutdown). The main
window implements it; tests build panels with :class:`StandaloneShell`, without a main window.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDockWidget, QMainWindow, QMenu, QWidget

# Asked before the window closes: False keeps it open (e.g. the user declined to stop a run).
CloseGuard = Callable[[], bool]
# Called when the window closes, with a time budget: cancel jobs, finish writes, stop threads.
ShutdownStep = Callable[[int], None]


class Shell(Protocol):
    def show_status(self, text: str, timeout_ms: int = 5000) -> None:
        """A transient sentence in the status bar."""

    def report_error(self, sentence: str) -> None:
        """A sentence the user must see (status bar and above the image); never a dialog."""

    def menu(self, name: str) -> QMenu:
        """One of the window's menus: 'file', 'view', 'models', 'labels', 'training', 'help'."""

    def add_panel(self, name: str, title: str, widget: QWidget,
                  area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea,
                  tabify_with: str | None = None) -> QDockWidget:
        """Put a widget in a dock; it appears in View > Panels."""

    def add_status_field(self, widget: QWidget, stretch: int = 0) -> None:
        """A permanent field at the right of the status bar."""

    def dialog_parent(self) -> QWidget:
        """The widget dialogs and message boxes belong to."""

    def keep_dialog(self, dialog: QDialog) -> QDialog:
        """Show a non-modal dialog the shell closes (``done``) when it closes."""

    def add_close_guard(self, guard: CloseGuard) -> None:
        """``guard()`` is asked before the window closes; False keeps it open."""

    def add_shutdown_step(self, step: ShutdownStep, order: int = 50) -> None:
        """``step(timeout_ms)`` runs when the window closes, lower ``order`` first."""

    def resize_panel(self, dock: QDockWidget, height: int) -> None:
        """Give a dock this height (e.g. the first time it is shown)."""


class ShutdownSteps:
    """The close guards and shutdown steps a shell keeps (shared by every implementation)."""

    def __init__(self) -> None:
        self._guards: list[CloseGuard] = []
        self._steps: list[tuple[int, int, ShutdownStep]] = []

    def add_close_guard(self, guard: CloseGuard) -> None:
        self._guards.append(guard)

    def add_shutdown_step(self, step: ShutdownStep, order: int = 50) -> None:
        self._steps.append((order, len(self._steps), step))

    def may_close(self) -> bool:
        return all(guard() for guard in list(self._guards))

    def shut_down(self, timeout_ms: int) -> None:
        """Run every step once, lower order first (a second call finds none left)."""
        steps, self._steps = sorted(self._steps, key=lambda item: item[:2]), []
        for _order, _n, step in steps:
            step(timeout_ms)


class StandaloneShell(QMainWindow):
    """A minimal shell for building one panel alone (tests, screenshots of a single panel)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []
        self.errors: list[str] = []
        self.docks: dict[str, QDockWidget] = {}
        self._menus: dict[str, QMenu] = {}
        self._shutdown = ShutdownSteps()

    def show_status(self, text: str, timeout_ms: int = 5000) -> None:
        self.messages.append(text)
        self.statusBar().showMessage(text, timeout_ms)

    def report_error(self, sentence: str) -> None:
        self.errors.append(sentence)
        self.statusBar().showMessage(sentence, 15_000)

    def menu(self, name: str) -> QMenu:
        if name not in self._menus:
            self._menus[name] = self.menuBar().addMenu(name.title())
        return self._menus[name]

    def add_panel(self, name: str, title: str, widget: QWidget,
                  area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea,
                  tabify_with: str | None = None) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"{name}Dock")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        if tabify_with in self.docks:
            self.tabifyDockWidget(self.docks[tabify_with], dock)
        self.docks[name] = dock
        return dock

    def add_status_field(self, widget: QWidget, stretch: int = 0) -> None:
        self.statusBar().addPermanentWidget(widget, stretch)

    def dialog_parent(self) -> QWidget:
        return self

    def keep_dialog(self, dialog: QDialog) -> QDialog:
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.add_shutdown_step(
            lambda _ms: shiboken6.isValid(dialog) and dialog.isVisible() and dialog.done(0),
            order=10)
        dialog.show()
        return dialog

    def add_close_guard(self, guard: CloseGuard) -> None:
        self._shutdown.add_close_guard(guard)

    def add_shutdown_step(self, step: ShutdownStep, order: int = 50) -> None:
        self._shutdown.add_shutdown_step(step, order)

    def resize_panel(self, dock: QDockWidget, height: int) -> None:
        self.resizeDocks([dock], [height], Qt.Orientation.Vertical)

    def shut_down(self, timeout_ms: int = 10_000) -> None:
        self._shutdown.shut_down(timeout_ms)

    def closeEvent(self, event):  # noqa: N802 - Qt naming
        if not self._shutdown.may_close():
            event.ignore()
            return
        self._shutdown.shut_down(10_000)
        super().closeEvent(event)
