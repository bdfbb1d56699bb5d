"""File > De-identify…: what `medviewer deid` does, in a dialog.

``DeidDialog(inputs, parent)``: the files/folders to de-identify (more can be added), the
profile's options, the project key file, the output folder, burned-in handling (confirm,
or masks drawn in :class:`~medviewer.gui.mask_editor.MaskEditor`), then the job on a
:class:`JobWorker` with progress and Cancel, and the report (what changed per attribute,
one sentence per refused file). The window stays responsive: nothing here reads a file on
the GUI thread.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox, QDialog, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLineEdit,
    QListWidget, QPushButton, QVBoxLayout, QWidget,
)

from medviewer.dicom.deid.profile import EXCLUSIVE, OPTION_TITLES, OPTIONS
from medviewer.gui.job_dialog import JobDialog, path_row
from medviewer.gui.widgets import bold_label, wrapping_label

DEFAULT_OPTIONS = frozenset({"retain-modified-dates"})


def report_text(result) -> str:
    """The job's result as the lines the CLI prints."""
    lines = []
    if result.output is not None:
        lines.append(f"De-identified {result.written} files of {result.patients} patients "
                     f"into {result.output} (with a DICOMDIR).")
    if result.masked:
        lines.append(f"Masked the pixels of {result.masked} files.")
    if result.refused:
        lines.append(f"Refused {len(result.refused)} files:")
        lines += [f"  {refused}" for refused in result.refused]
    if result.changes:
        lines.append("What changed (files per attribute):")
        for name, actions in result.changes_by_attribute().items():
            lines.append(f"  {name}: " + ", ".join(f"{a} {n}" for a, n in actions.items()))
    if result.key_created:
        lines.append(f"A new project key was written to {result.key_file}: keep it private.")
    if result.mapping_file is not None:
        lines.append(f"The mapping back to the originals is in {result.mapping_file}.")
    return "\n".join(lines)


class DeidDialog(JobDialog):
    def __init__(self, inputs: list[str | Path] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__("De-identify DICOM", "De-identify", "The report appears here.",
                         "deid", parent)
        self.mask = None

        self.inputs = QListWidget()
        self.inputs.setMaximumHeight(90)
        for path in inputs or []:
            self.inputs.addItem(str(path))
        add_files = QPushButton("Add files…")
        add_files.clicked.connect(self._add_files)
        add_folder = QPushButton("Add folder…")
        add_folder.clicked.connect(self._add_folder)
        input_buttons = QHBoxLayout()
        input_buttons.addWidget(add_files)
        input_buttons.addWidget(add_folder)
        input_buttons.addStretch(1)

        options = QGroupBox("PS3.15 Basic Profile, with these options")
        option_layout = QVBoxLayout(options)
        option_layout.setSpacing(2)
        self.option_boxes: dict[str, QCheckBox] = {}
        for name in OPTIONS:
            box = QCheckBox(OPTION_TITLES[name])
            box.setChecked(name in DEFAULT_OPTIONS)
            box.toggled.connect(lambda on, name=name: self._option_toggled(name, on))
            self.option_boxes[name] = box
            option_layout.addWidget(box)

        self.key_file = QLineEdit()
        self.key_file.setPlaceholderText("none: pseudonyms for this run only")
        key_browse = QPushButton("Choose…")
        key_browse.clicked.connect(self._choose_key)
        self.output = QLineEdit()
        self.output.setPlaceholderText("a new or empty folder")
        output_browse = QPushButton("Choose…")
        output_browse.clicked.connect(self._choose_output)
        form = QFormLayout()
        form.addRow("Project key file:", path_row(self.key_file, key_browse))
        form.addRow("Output folder:", path_row(self.output, output_browse))

        burned = QGroupBox("Burned-in text (ultrasound, screen captures, Burned In "
                           "Annotation = YES)")
        burned_layout = QVBoxLayout(burned)
        self.confirm = QCheckBox("I checked these images: include them unmasked")
        self.mask_button = QPushButton("Draw masks…")
        self.mask_button.clicked.connect(self._edit_mask)
        self.mask_label = wrapping_label("maskSummary")
        self.mask_label.setText("Without confirmation or masks, such files are refused.")
        row = QHBoxLayout()
        row.addWidget(self.mask_button)
        row.addWidget(self.mask_label, 1)
        burned_layout.addWidget(self.confirm)
        burned_layout.addLayout(row)

        self.lay_out(bold_label("Files, folders or DICOMDIRs (never written to)"),
                     self.inputs, input_buttons, options, form, burned)
        self.resize(760, 820)

    # -- choosing
    def input_paths(self) -> list[Path]:
        return [Path(self.inputs.item(i).text()) for i in range(self.inputs.count())]

    def chosen_options(self) -> frozenset[str]:
        return frozenset(n for n, box in self.option_boxes.items() if box.isChecked())

    def _option_toggled(self, name: str, on: bool) -> None:
        """Options that exclude each other behave like radio buttons that can all be off."""
        if not on:
            return
        for together, _why in EXCLUSIVE:
            if name in together:
                for other in together - {name}:
                    self.option_boxes[other].setChecked(False)

    def _add_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "DICOM files or DICOMDIR")
        for path in paths:
            self.inputs.addItem(path)

    def _add_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder of DICOM files")
        if path:
            self.inputs.addItem(path)

    def _choose_key(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Project key file (an existing one, or a new one to create)",
            options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.key_file.setText(path)

    def _choose_output(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Output folder (new or empty)")
        if path:
            self.output.setText(path)

    def _edit_mask(self) -> None:
        paths = self.input_paths()
        start = str(paths[0]) if paths else ""
        path, _ = QFileDialog.getOpenFileName(self, "An image that shows the burned-in text",
                                              start)
        if path:
            self.open_mask_editor(Path(path))

    def open_mask_editor(self, path: Path):
        from medviewer.gui.mask_editor import MaskEditor

        editor = MaskEditor(path, self)
        if editor.exec() == QDialog.DialogCode.Accepted:
            self.set_mask(editor.mask())
        return editor

    def set_mask(self, mask) -> None:
        self.mask = mask
        if mask is None:
            self.mask_label.setText("No masks: flagged files are refused unless confirmed.")
        else:
            self.mask_label.setText(f"{len(mask.rectangles)} rectangles, filled on every frame "
                                    f"of flagged {mask.columns} x {mask.rows} images.")

    # -- the job
    def start(self) -> None:
        from medviewer.dicom.deid.job import DeidRequest, deidentify_job
        from medviewer.dicom.deid.profile import Profile

        self.error.clear()
        inputs, output = self.input_paths(), self.output.text().strip()
        if not inputs or not output:
            self.error.setText("Add at least one input and choose an output folder.")
            return
        key = self.key_file.text().strip()
        request = DeidRequest(inputs, Path(output), Profile(self.chosen_options()),
                              key_file=Path(key) if key else None,
                              confirm_burned_in=self.confirm.isChecked(), mask=self.mask)
        self.run_job(lambda cancel: deidentify_job(request, cancel),
                     "de-identifying DICOM files")

    def show_result(self, result) -> None:
        self.status.setText("Done." if result.written else "Nothing was written.")
        self.report.setPlainText(report_text(result))
