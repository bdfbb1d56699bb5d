"""Training > Train a model…: one training wizard per window, and what it tells the window.

The window (a :class:`~medviewer.gui.shell.Shell` with a Qt-free ``session``) does not keep
the wizard: a :class:`TrainingWizardOpener`, a child object of the window, does. Through the
shell protocol it asks before the window closes while the wizard trains or exports, and
stops the wizard's jobs when the window closes; through the session it tells the rest of
the app that the installed models changed. In the Viewer edition, without PyTorch, it
explains what the Studio edition adds instead.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QMessageBox, QWizard

from medviewer.app.session import Session
from medviewer.app.training import studio_available
from medviewer.gui.shell import Shell
from medviewer.gui.training_wizard.wizard import TrainingWizard

STUDIO_TITLE = "Training needs MedViewer Studio"
STUDIO_EXPLANATION = (
    "This is the MedViewer Viewer edition: it opens studies and runs installed AI models, "
    "but it does not include PyTorch, which training needs.\n\n"
    "The Studio edition adds local retraining: pick labelled images (a folder per class, a "
    "CSV of path,label or a label set you made in MedViewer), train or fine-tune a "
    "classifier on this computer's CPU or CUDA GPU while watching its loss and AUROC, choose "
    "its operating point on the ROC curve, and export it to ONNX with its model card so it "
    "appears in the model list.\n\n"
    "Install MedViewer Studio (or, from source, pip install 'medviewer[studio]') to train.")
OPENER_NAME = "trainingWizardOpener"
# A batch of a large network on a CPU can outlast the window's shutdown budget, and a
# training thread still running when the application exits crashes Qt: wait this long.
STOP_JOBS_TIMEOUT_MS = 120_000


class TrainingWizardOpener(QObject):
    """Keeps a window's one training wizard: opens it or brings it to the front, asks before
    the window closes while it works, stops it when the window closes, and tells the
    session when it registered a model."""

    def __init__(self, shell: Shell, session: Session) -> None:
        super().__init__(shell.dialog_parent())
        self.setObjectName(OPENER_NAME)
        self._shell = shell
        self._session = session
        self.wizard: TrainingWizard | None = None
        shell.add_close_guard(self._may_close)
        shell.add_shutdown_step(self._shut_down, order=10)  # the longest to stop: first

    def open(self) -> TrainingWizard:
        wizard = self.wizard
        if wizard is not None and wizard.isVisible():
            wizard.raise_()
            wizard.activateWindow()
            return wizard
        if wizard is not None:
            wizard.deleteLater()
        wizard = TrainingWizard(self._shell.dialog_parent())
        wizard.model_registered.connect(self._model_registered)
        self.wizard = wizard
        wizard.show()
        return wizard

    def _model_registered(self, entry: Any) -> None:
        self._session.models_changed()
        self._shell.show_status(f"Model {entry.key} was added to the model list.", 15_000)

    def _may_close(self) -> bool:
        """The window is closing: ask first while a training or an export runs, or when a
        model trained in the wizard was not exported."""
        wizard = self.wizard
        if wizard is None or not wizard.isVisible():
            return True
        return wizard.confirm_close() == "close"

    def _shut_down(self, timeout_ms: int) -> None:
        wizard = self.wizard
        if wizard is None:
            return
        wizard.shutdown(max(timeout_ms, STOP_JOBS_TIMEOUT_MS))
        if wizard.isVisible():
            QWizard.reject(wizard)  # already asked: close without asking again


def _opener(shell: Shell) -> TrainingWizardOpener | None:
    return shell.dialog_parent().findChild(TrainingWizardOpener, OPENER_NAME,
                                           Qt.FindChildOption.FindDirectChildrenOnly)


def training_wizard_of(shell: Shell) -> TrainingWizard | None:
    """The wizard opened from this window (None before the first time)."""
    opener = _opener(shell)
    return opener.wizard if opener is not None else None


def open_training_wizard(shell: Shell, session: Session | None = None,
                         ) -> TrainingWizard | QMessageBox:
    """Training > Train a model…: the wizard, or in the Viewer edition what Studio adds.

    ``shell`` is the hosting window; ``session`` defaults to its ``session`` (the main
    window's).
    """
    if not studio_available():
        box = QMessageBox(QMessageBox.Icon.Information, STUDIO_TITLE, STUDIO_EXPLANATION,
                          QMessageBox.StandardButton.Ok, shell.dialog_parent())
        box.setObjectName("studioExplanation")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        return box
    opener = _opener(shell)
    if opener is None:
        opener = TrainingWizardOpener(shell, session if session is not None else shell.session)
    return opener.open()
