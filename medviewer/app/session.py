"""The application session: what the user has open and chosen, with plain-Python events.

One :class:`Session` per main window (and one per command-line run that needs it). It holds
state, not widgets: panels subscribe to ``session.events`` and call its methods; they never
look each other up. Events are emitted on the thread that calls the method (the GUI thread
in the app).

Events (``session.events.<name>``, each emitted with the value shown):

- ``settings_changed(Settings)``: a setting was changed and saved;
- ``models_changed(None)``: the installed models changed (import, training, removal);
- ``open_requested(list[Path])``: something asks the shell to open these paths (a PACS
  retrieve, a batch row, a label navigation target).
"""

from __future__ import annotations

import logging
from pathlib import Path

from medviewer.events import EventGroup
from medviewer.settings import (
    Settings,
    check_setting,
    load_settings,
    load_settings_with_notices,
    save_settings,
)

log = logging.getLogger(__name__)


class SessionEvents(EventGroup):
    names = ("settings_changed", "models_changed", "open_requested")


class Session:
    """State shared by the panels and workflows of one window (Qt-free)."""

    def __init__(self, settings: Settings | None = None) -> None:
        # Sentences about settings that were replaced by their defaults at load: the GUI
        # shows them once.
        self.settings_notices: list[str] = []
        if settings is None:
            settings, self.settings_notices = load_settings_with_notices()
        self.settings = settings
        self.events = SessionEvents()

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

    def models_changed(self) -> None:
        """Tell every subscriber that the installed models changed."""
        self.events.models_changed.emit(None)
