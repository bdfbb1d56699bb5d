"""Edit > Preferences: the reading-room settings, checked as they are typed, saved through the
session (so every panel hears ``settings_changed``).

``PreferencesDialog(session, parent)`` stands alone: the main window opens it with
``PreferencesDialog(self.session, self).open()``. Each widget's value is checked against the
setting's rule (``medviewer.settings.check_setting``); while one is wrong, its sentence is
shown and Save is disabled. Only the settings the user changed are saved, so a change made
meanwhile in another window is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QGroupBox,
    QHBoxLayout, QLineEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget,
)

from medviewer.app.session import Session
from medviewer.errors import UserError
from medviewer.gui.widgets import wrapping_label
from medviewer.settings import (
    DRAG_ACTIONS,
    LENGTH_UNITS,
    MAX_READER_NAME,
    RULES,
    WHEEL_ACTIONS,
    Settings,
    check_setting,
)

ERROR_STYLE = "color: #ff6b6b;"
DRAG_TEXT = {"window_level": "Window / level", "pan": "Pan", "zoom": "Zoom",
             "tool": "The selected tool (measure, region...)"}
WHEEL_TEXT = {"frames": "Scroll frames and images", "zoom": "Zoom"}
UNIT_TEXT = {"mm": "Millimetres (mm)", "cm": "Centimetres (cm)"}


def _combo(texts: dict[str, str], values: tuple[str, ...]) -> QComboBox:
    combo = QComboBox()
    for value in values:
        combo.addItem(texts[value], value)
    return combo


def _spin(name: str, suffix: str, step: int) -> QSpinBox:
    rule = RULES[name]
    spin = QSpinBox()
    spin.setRange(int(rule.minimum or 0), int(rule.maximum or 2**31 - 1))
    spin.setSuffix(suffix)
    spin.setSingleStep(step)
    spin.setGroupSeparatorShown(True)
    return spin


class PreferencesDialog(QDialog):
    """The settings a reader and the site's IT person change, in one dialog."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.setWindowTitle("Preferences")
        self.setObjectName("preferences")

        self.reader_edit = QLineEdit()
        self.reader_edit.setMaxLength(MAX_READER_NAME)
        self.reader_edit.setToolTip("Labels, AI reads in the audit log and reports carry "
                                    "this name.")
        self.left_combo = _combo(DRAG_TEXT, DRAG_ACTIONS)
        self.middle_combo = _combo(DRAG_TEXT, DRAG_ACTIONS)
        self.right_combo = _combo(DRAG_TEXT, DRAG_ACTIONS)
        self.wheel_combo = _combo(WHEEL_TEXT, WHEEL_ACTIONS)
        self.corner_check = QCheckBox("Show patient and study text in the image's corners")
        self.saliency_check = QCheckBox("Show the AI's saliency overlay when a read arrives")
        self.opacity_spin = QSpinBox()
        self.opacity_spin.setRange(0, 100)
        self.opacity_spin.setSuffix(" %")
        self.opacity_spin.setSingleStep(5)
        self.auto_check = QCheckBox("Read each image with the AI when it is opened")
        self.pixel_cache_spin = _spin("pixel_cache_mb", " MB", 256)
        self.retrieve_cache_spin = _spin("retrieve_cache_mb", " MB", 1024)
        self.retrieve_dir_edit = QLineEdit()
        self.retrieve_dir_edit.setPlaceholderText(str(self.default_retrieve_dir()))
        self.retrieve_dir_edit.setMinimumWidth(300)
        self.retrieve_dir_edit.setToolTip("Where studies retrieved from a PACS are kept; "
                                          "empty for the default folder shown.")
        self.browse_button = QPushButton("Browse…")
        self.browse_button.clicked.connect(self._browse_retrieve_dir)
        self.unit_combo = _combo(UNIT_TEXT, LENGTH_UNITS)

        # setting name -> (read the widget, show a value in it)
        self.fields: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {
            "reader_name": (self.reader_edit.text, self.reader_edit.setText),
            "mouse_left_drag": self._combo_field(self.left_combo),
            "mouse_middle_drag": self._combo_field(self.middle_combo),
            "mouse_right_drag": self._combo_field(self.right_combo),
            "mouse_wheel": self._combo_field(self.wheel_combo),
            "corner_text": (self.corner_check.isChecked, self.corner_check.setChecked),
            "saliency_overlay": (self.saliency_check.isChecked, self.saliency_check.setChecked),
            "overlay_opacity": (lambda: self.opacity_spin.value() / 100.0,
                                lambda v: self.opacity_spin.setValue(round(v * 100))),
            "ai_auto_run": (self.auto_check.isChecked, self.auto_check.setChecked),
            "pixel_cache_mb": (self.pixel_cache_spin.value, self.pixel_cache_spin.setValue),
            "retrieve_cache_mb": (self.retrieve_cache_spin.value,
                                  self.retrieve_cache_spin.setValue),
            "retrieve_cache_dir": (lambda: self.retrieve_dir_edit.text().strip(),
                                   self.retrieve_dir_edit.setText),
            "length_unit": self._combo_field(self.unit_combo),
        }

        reader = QFormLayout()
        reader.addRow("Reader name", self.reader_edit)
        mouse = QFormLayout()
        mouse.addRow("Left drag", self.left_combo)
        mouse.addRow("Middle drag", self.middle_combo)
        mouse.addRow("Right drag", self.right_combo)
        mouse.addRow("Wheel", self.wheel_combo)
        overlays = QFormLayout()
        overlays.addRow(self.corner_check)
        overlays.addRow(self.saliency_check)
        overlays.addRow("Saliency opacity", self.opacity_spin)
        ai = QFormLayout()
        ai.addRow(self.auto_check)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.retrieve_dir_edit, 1)
        folder_row.addWidget(self.browse_button)
        caches = QFormLayout()
        caches.addRow("Decoded images in memory", self.pixel_cache_spin)
        caches.addRow("Retrieved studies on disk", self.retrieve_cache_spin)
        caches.addRow("Retrieved studies folder", folder_row)
        units = QFormLayout()
        units.addRow("Lengths and areas in", self.unit_combo)

        self.error_label = wrapping_label("preferences_error", ERROR_STYLE)
        self.error_label.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                   | QDialogButtonBox.StandardButton.Cancel
                                   | QDialogButtonBox.StandardButton.RestoreDefaults)
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        self.defaults_button = buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
        self.defaults_button.setToolTip("Show the default settings (saved only with Save); "
                                        "the reader name stays.")
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        self.defaults_button.clicked.connect(self.restore_defaults)

        left = QVBoxLayout()
        right = QVBoxLayout()
        for column, title, form in ((left, "Reader", reader), (left, "Mouse", mouse),
                                    (left, "Units", units), (right, "Image overlays", overlays),
                                    (right, "AI", ai), (right, "Caches", caches)):
            box = QGroupBox(title)
            box.setLayout(form)
            column.addWidget(box)
        left.addStretch(1)
        right.addStretch(1)
        columns = QHBoxLayout()
        columns.addLayout(left, 1)
        columns.addLayout(right, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(columns)
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)

        self.show_settings(session.settings)
        self._shown = self.values()
        for edit in (self.reader_edit, self.retrieve_dir_edit):
            edit.textChanged.connect(self.validate)

    # ------------------------------------------------------------ values
    @staticmethod
    def _combo_field(combo: QComboBox) -> tuple[Callable[[], Any], Callable[[Any], None]]:
        def show(value: Any) -> None:
            index = combo.findData(value)
            combo.setCurrentIndex(max(index, 0))

        return combo.currentData, show

    @staticmethod
    def default_retrieve_dir() -> Path:
        from medviewer.pacs.cache import default_cache_root

        return default_cache_root()

    def show_settings(self, settings: Settings) -> None:
        for name, (_, show) in self.fields.items():
            show(getattr(settings, name))
        self.validate()

    def values(self) -> dict[str, Any]:
        """Every setting as the widgets hold it (not yet checked)."""
        return {name: read() for name, (read, _) in self.fields.items()}

    def problems(self) -> list[str]:
        """One sentence per value the settings would refuse."""
        found = []
        for name, value in self.values().items():
            try:
                check_setting(name, value)
            except UserError as exc:
                found.append(self._sentence(name, value, str(exc)))
                continue
            if name == "retrieve_cache_dir" and value:
                folder = Path(value).expanduser()
                if folder.exists() and not folder.is_dir():
                    found.append(f"The retrieved studies folder {folder} is a file, not a "
                                 "folder.")
        return found

    @staticmethod
    def _sentence(name: str, value: Any, fallback: str) -> str:
        if name == "reader_name":
            return (f"The reader name must be 1 to {MAX_READER_NAME} characters without tabs "
                    "or line breaks.")
        if name == "retrieve_cache_dir":
            return (f"The retrieved studies folder must be a full path (such as "
                    f"{PreferencesDialog.default_retrieve_dir()}), or empty for the default, "
                    f"not '{value}'.")
        return fallback

    def validate(self) -> bool:
        problems = self.problems()
        self.error_label.setText(" ".join(problems))
        self.error_label.setVisible(bool(problems))
        self.save_button.setEnabled(not problems)
        return not problems

    def changes(self) -> dict[str, Any]:
        """The checked values the user changed from what the dialog first showed (compared as
        shown: an opacity of 0.333 shows as 33 % and is not changed by opening the dialog)."""
        return {name: check_setting(name, value) for name, value in self.values().items()
                if value != self._shown[name]}

    # ------------------------------------------------------------ actions
    def restore_defaults(self) -> None:
        defaults = Settings()
        defaults.reader_name = self.reader_edit.text()  # who reads is not a preference
        self.show_settings(defaults)

    def save(self) -> None:
        if not self.validate():
            return
        changes = self.changes()
        if changes:
            problem = self.session.update_settings(**changes)
            self._shown = self.values()  # applied to the session, saved or not
            if problem:
                self.error_label.setText(f"{problem} They apply until MedViewer closes.")
                self.error_label.show()
                return
        self.accept()

    def _browse_retrieve_dir(self) -> None:
        start = self.retrieve_dir_edit.text().strip() or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Retrieved studies folder", start)
        if folder:
            self.retrieve_dir_edit.setText(folder)
