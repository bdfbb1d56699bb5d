"""The application session: what the user has open and chosen, with plain-Python events.

One :class:`Session` per main window. It holds state, not widgets: panels subscribe to its
events and call its methods; they never look each other up. Events are emitted on the
thread that calls the method (the GUI thread in the app).

``session.events``, each emitted with the value shown:

- ``catalog_opened(Catalog)``: a file, folder or DICOMDIR was indexed and is now open;
- ``catalogs_closed(None)``: everything open was closed;
- ``images_closed(list[Path])``: these images were closed (one study or series), the rest
  stays open; ``image_gone`` comes first when the one on screen was among them;
- ``image_shown(Instance)``: the image on screen changed (``image_gone(None)``: none is);
- ``show_requested(Path)``: show this open image (the browser selects it);
- ``open_requested(list[Path])``: open these files or folders (index, then show the first);
- ``send_requested(list[Path])``: send these DICOM files (AI results as SR) to a PACS;
- ``evaluation_requested((list[(Path, class)], source))``: check a model on these
  labelled images (the AI panel opens its evaluation);
- ``problem(tuple[Path, str])``: a file could not be read, with its one sentence;
- ``settings_changed(Settings)``: settings were changed and saved;
- ``models_changed(None)``: the installed models changed (import, training, removal).

Two parts have events of their own: ``session.ai`` (:class:`~medviewer.app.ai_reading.AiState`:
the active model and the AI's read of the shown image) and ``session.labelling``
(:class:`~medviewer.app.labelling.Labelling`). The session connects them: the AI's read of
an image becomes the label panel's suggestion for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medviewer.app.ai_reading import AiState
from medviewer.app.labelling import Labelling
from medviewer.events import EventGroup
from medviewer.settings import (
    Settings,
    check_setting,
    load_settings,
    load_settings_with_notices,
    save_settings,
)

if TYPE_CHECKING:
    from medviewer.app.ai_reading import ImageRead
    from medviewer.dicom.catalog import Catalog, InstanceRecord

log = logging.getLogger(__name__)


class SessionEvents(EventGroup):
    names = ("catalog_opened", "catalogs_closed", "images_closed", "image_shown", "image_gone",
             "show_requested", "open_requested", "send_requested", "evaluation_requested",
             "problem",
             "settings_changed", "models_changed")


class Session:
    """State shared by the panels and workflows of one window (Qt-free)."""

    def __init__(self, settings: Settings | None = None,
                 label_store_path: Path | None = None) -> None:
        # Sentences about settings that were replaced by their defaults at load: the GUI
        # shows them once.
        self.settings_notices: list[str] = []
        if settings is None:
            settings, self.settings_notices = load_settings_with_notices()
        self.settings = settings
        self.events = SessionEvents()
        self.catalogs: list[Catalog] = []
        self.image: Any = None  # the Instance on screen (medviewer.dicom.reader.Instance)
        self.ai = AiState()
        self.labelling = Labelling(self.settings.reader_name, label_store_path)
        self.ai.events.read_finished.connect(self._suggest_from_read)

    # ------------------------------------------------------------ what is open
    def add_catalog(self, catalog: Catalog) -> None:
        from medviewer.app.browse_order import display_order

        root = Path(catalog.root)
        self.catalogs = [c for c in self.catalogs if Path(c.root) != root] + [catalog]
        self.labelling.open_catalog(root, display_order(catalog))
        self.events.catalog_opened.emit(catalog)

    def close_all(self) -> None:
        self.catalogs.clear()
        self.image = None
        self.ai.clear_read()
        self.labelling.close_all()
        self.events.catalogs_closed.emit(None)

    def close_images(self, paths: Iterable[str | Path]) -> list[Path]:
        """Close these open images (a study, a series), keeping the rest open: they leave
        the catalogs, the labelling scopes and the AI's read; returns those that were open."""
        wanted = {Path(p) for p in paths}
        closed = [Path(r.path) for c in self.catalogs for r in c.instances()
                  if Path(r.path) in wanted]
        if not closed:
            return []
        gone = set(closed)
        kept = (_catalog_without(c, gone) for c in self.catalogs)
        self.catalogs = [c for c in kept if c is not None]
        self.labelling.close_paths(gone)
        if self.image is not None and Path(self.image.path) in gone:
            self.image_failed()  # nothing on screen to read or label any more
        self.events.images_closed.emit(closed)
        return closed

    def open_records(self) -> list[InstanceRecord]:
        """Every open image, once, in the browser's order."""
        from medviewer.app.browse_order import display_order

        seen: dict[Path, InstanceRecord] = {}
        for catalog in self.catalogs:
            for record in display_order(catalog):
                seen.setdefault(Path(record.path), record)
        return list(seen.values())

    # ------------------------------------------------------------ the image on screen
    def show_image(self, instance: Any) -> None:
        self.image = instance
        self.ai.clear_read()
        self.events.image_shown.emit(instance)

    def image_failed(self) -> None:
        """The image asked for could not be shown (the view may still show the previous
        one, which can then not be read or labelled as the one asked for)."""
        self.image = None
        self.ai.clear_read()
        self.events.image_gone.emit(None)

    def _suggest_from_read(self, read: ImageRead) -> None:
        """The AI's decision on an image becomes the label panel's suggestion for it."""
        from medviewer.app.labelling import AiSuggestion

        prediction = read.prediction
        self.labelling.set_suggestion(prediction.path, AiSuggestion.from_prediction(prediction))

    # ------------------------------------------------------------ settings
    def update_settings(self, **values: object) -> str | None:
        """Set and save settings (merged into a fresh read, since other windows may have
        saved meanwhile); returns a sentence when they could not be saved (they still apply
        to this session). A value outside its rule raises SettingsError and nothing changes."""
        values = {name: check_setting(name, value) for name, value in values.items()}
        fresh = load_settings()
        for name, value in values.items():
            setattr(fresh, name, value)
            setattr(self.settings, name, value)
        problem = None
        try:
            save_settings(fresh)
        except OSError as exc:
            log.warning("Could not save settings: %s", exc)
            problem = f"The settings could not be saved ({exc.strerror or exc})."
        self.events.settings_changed.emit(self.settings)
        return problem

    # ------------------------------------------------------------ requests to the shell
    def request_open(self, paths: list[str | Path]) -> None:
        """Ask the shell to open these files or folders (it indexes and shows the first)."""
        self.events.open_requested.emit([Path(p) for p in paths])

    def request_show(self, path: str | Path) -> None:
        """Ask the shell to show this image (selected in the browser when it lists it)."""
        self.events.show_requested.emit(Path(path))

    def request_send(self, paths: list[str | Path]) -> None:
        """Ask the shell to send these DICOM files to a PACS (its PACS panel does)."""
        self.events.send_requested.emit([Path(p) for p in paths])

    def request_evaluation(self, pairs: list[tuple[Path, str]], source: str) -> None:
        """Ask for a model to be checked on these (image, class) pairs (e.g. a label set)."""
        self.events.evaluation_requested.emit((list(pairs), source))

    def report_problem(self, path: str | Path, sentence: str) -> None:
        self.events.problem.emit((Path(path), sentence))

    def models_changed(self) -> None:
        """Tell every subscriber that the installed models changed."""
        self.events.models_changed.emit(None)


def _catalog_without(catalog: Catalog, gone: set[Path]) -> Catalog | None:
    """A copy of ``catalog`` without the images in ``gone`` (emptied series, studies and
    patients dropped); None when nothing is left. The catalog itself is not changed: the
    study browser and the viewports may still hold its records."""
    patients = []
    for patient in catalog.patients:
        studies = []
        for study in patient.studies:
            series = [replace(s, instances=[r for r in s.instances if Path(r.path) not in gone])
                      for s in study.series]
            series = [s for s in series if s.instances]
            if series:
                studies.append(replace(study, series=series))
        if studies:
            patients.append(replace(patient, studies=studies))
    return replace(catalog, patients=patients) if patients else None
