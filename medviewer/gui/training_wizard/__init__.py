"""The training wizard: a page per module, the wizard, and how a window opens it.

The main window imports this package only when Training > Train a model… is chosen, and
PyTorch is imported only after that, on a worker thread, while the wizard is already on
screen: the viewer starts without torch and runs where it is not installed (the Viewer
edition), in which case :func:`open_training_wizard` explains what the Studio edition adds.

Every long step (loading PyTorch, reading the data and its split, reading a checkpoint,
training, scoring, exporting) is a Qt-free job in ``medviewer.app.training`` or
``medviewer.app.training_export``, run by :class:`medviewer.gui.workers.JobWorker`; the pages
only show their events. Nothing Qt-free lives in this package.

| module | holds |
|---|---|
| ``opener`` | ``open_training_wizard(window)``: one wizard per window, close guard, shutdown |
| ``wizard`` | ``TrainingWizard``: the pages, their jobs, closing |
| ``data_page`` ... ``export_page`` | one page each |
| ``page_helpers`` | the page base class, what a page asks of the wizard, widget helpers |
"""

from medviewer.gui.training_wizard.opener import (STUDIO_EXPLANATION, STUDIO_TITLE,
                                                  open_training_wizard, training_wizard_of)
from medviewer.gui.training_wizard.wizard import (PAGE_DATA, PAGE_EVALUATE, PAGE_EXPORT,
                                                  PAGE_MODEL, PAGE_SETTINGS, PAGE_TRAIN,
                                                  TrainingWizard)

__all__ = ["PAGE_DATA", "PAGE_EVALUATE", "PAGE_EXPORT", "PAGE_MODEL", "PAGE_SETTINGS",
           "PAGE_TRAIN", "STUDIO_EXPLANATION", "STUDIO_TITLE", "TrainingWizard",
           "open_training_wizard", "training_wizard_of"]
