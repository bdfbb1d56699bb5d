"""The AI reading workflow in the viewer: model choice, results panel, batch table, saliency.

:func:`install_ai` adds everything to a shell (``gui/shell.py``, the main window in the app):

- the Models menu (active model, Manage/Import, model information, Run AI, batch runs,
  saliency overlay, Use TensorRT) and a status bar field with the execution provider,
- :class:`~medviewer.gui.results_view.ResultsPanel` (dock): per-class probability bars
  against their operating points for the shown image, model, provider, inference time and
  the saliency controls,
- :class:`~medviewer.gui.batch_panel.BatchPanel` (dock): a sortable table filled as a batch
  job's results arrive,
- a :class:`~medviewer.gui.overlay.SaliencyOverlay` on the image view.

:class:`AiReader`, the controller, lives here. The state (the active model, its load error,
the read of the shown image, the reader's overlay class) is the session's ``session.ai``
(``medviewer/app/ai_reading.py``), so the label panel follows the AI's read without knowing
this panel. All model work runs on :class:`~medviewer.gui.workers.JobWorker` threads (the
jobs are in :mod:`medviewer.app.ai_reading`): session creation and warm-up, one read per
shown image (a stale read is cancelled and its result dropped), batch jobs
(``medviewer.inference.predict.predict_job``) and occlusion maps. Nothing here imports
onnxruntime, pydicom or pyqtgraph at import time: the viewer starts without them.
Every prediction goes into the audit log (``medviewer.inference.audit``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QFileDialog, QLabel, QMessageBox

from medviewer.app.ai_reading import (
    ImageRead, LoadedModel, import_model_job, load_model_job, provider_name, read_image_job,
)
from medviewer.gui.ai_batch import AiBatch
from medviewer.gui.ai_saliency import AiSaliency
from medviewer.gui.models_dialog import ModelInfoDialog, ModelsDialog
from medviewer.gui.results_view import ResultsPanel
from medviewer.gui.widgets import subscribe
from medviewer.gui.workers import JobWorker
from medviewer.jobs import CancelFlag, Progress

if TYPE_CHECKING:
    from medviewer.app.session import Session
    from medviewer.gui.image_view import ImageView
    from medviewer.gui.shell import Shell
    from medviewer.inference.registry import ModelEntry
    from medviewer.inference.runtime import ModelSession

log = logging.getLogger(__name__)

# Moving through images quickly: wait this long after an image is shown before reading it.
READ_DELAY_MS = 40
# The default model loads after the first image is shown (or this long after start-up), so
# onnxruntime never competes with the window's first paint and first image.
STARTUP_LOAD_AFTER_IMAGE_MS = 250
STARTUP_LOAD_FALLBACK_MS = 2000


class AiReader(QObject):
    """Wires models, reads, batch runs and the overlay into a shell and its image view."""

    model_ready = Signal(object)  # ModelSession
    model_failed = Signal(str)
    read_finished = Signal(object)  # ImageRead shown in the panel
    import_ended = Signal(str)  # 'finished' | 'failed'

    def __init__(self, session: Session, shell: Shell, view: ImageView) -> None:
        super().__init__(shell.dialog_parent())
        self.app_session = session
        self.state = session.ai
        self.shell = shell
        self.view = view
        settings = session.settings
        self.auto_read = bool(settings.ai_auto_run)
        # The saved defaults of the two toggles, as last applied (see _on_settings_changed).
        self._toggle_defaults = (bool(settings.ai_auto_run), bool(settings.saliency_overlay))
        self.message_box: QMessageBox | None = None
        self.info_dialog: ModelInfoDialog | None = None
        self.models_dialog: ModelsDialog | None = None
        self._read_pending = False  # read the shown image once the model is loaded
        self._workers: set[JobWorker] = set()
        self._loader: JobWorker | None = None
        self._reader: JobWorker | None = None
        self._importer: JobWorker | None = None
        self._closed = False

        self.panel = ResultsPanel()
        self.saliency = AiSaliency(self, settings.overlay_opacity, bool(settings.saliency_overlay))
        self.overlay = self.saliency.overlay
        self.saliency_shown = self.saliency.shown  # an OverlayMap is on the image
        self.provider_field = QLabel("AI: no model")
        self.provider_field.setObjectName("aiProviderLabel")
        self.provider_field.setToolTip("The AI model and where it runs")
        self.results_dock = shell.add_panel("results", "AI results", self.panel,
                                            Qt.DockWidgetArea.RightDockWidgetArea)
        self.batch = AiBatch(self)
        shell.add_status_field(self.provider_field)
        self._results_dock_fitted = False
        self.results_dock.visibilityChanged.connect(self._on_results_dock_visible)

        self._read_timer = QTimer(self)
        self._read_timer.setSingleShot(True)
        self._read_timer.setInterval(READ_DELAY_MS)
        self._read_timer.timeout.connect(self.read_current)
        self.opacity_save_timer = QTimer(self)
        self.opacity_save_timer.setSingleShot(True)
        self.opacity_save_timer.setInterval(400)
        self.opacity_save_timer.timeout.connect(
            lambda: self.app_session.update_settings(overlay_opacity=self.overlay.opacity))
        self._startup_timer = QTimer(self)
        self._startup_timer.setSingleShot(True)
        self._startup_timer.timeout.connect(self.load_default_model)

        self._build_actions()
        self._connect()
        shell.add_shutdown_step(self.wait_for_workers, order=40)

        self._startup_timer.start(STARTUP_LOAD_FALLBACK_MS)

    # ------------------------------------------------------------ the session's AI state
    @property
    def entry(self) -> ModelEntry | None:
        return self.state.entry

    @property
    def model(self) -> ModelSession | None:
        """The loaded model's onnxruntime session (None while loading or unusable)."""
        return self.state.model

    @property
    def read(self) -> ImageRead | None:
        """The read shown in the panel."""
        return self.state.read

    # ------------------------------------------------------------ construction
    def _build_actions(self) -> None:
        menu = self.shell.menu("models")
        self.active_menu = menu.addMenu("Active &model")
        self.active_menu.setObjectName("activeModelMenu")
        self.active_menu.aboutToShow.connect(self.refresh_model_menu)
        self._model_group = QActionGroup(self)
        self._model_group.setExclusive(True)
        self.manage_action = menu.addAction("&Manage models…", self.show_models_dialog)
        self.import_action = menu.addAction("&Import model…", self.choose_model_to_import)
        self.info_action = menu.addAction("Model &information…", self.show_model_info)
        self.evaluate_action = menu.addAction("&Evaluate on labelled images…",
                                              lambda: self.show_evaluate_dialog())
        self.evaluate_action.setToolTip("Check a model on your own labelled images before "
                                        "using it: AUROC, sensitivity/specificity, "
                                        "calibration, unusual images")
        menu.addSeparator()
        self.run_action = menu.addAction("&Run AI on this image", self.read_current)
        self.run_action.setShortcut(QKeySequence("Ctrl+R"))
        self.report_action = menu.addAction("Save a &report of this read (PDF)…",
                                            self.choose_report_file)
        self.report_action.setToolTip("The image with its saliency map, each finding, the "
                                      "model and its limitations, your label: one PDF")
        self.send_sr_action = menu.addAction("Send this read to a PACS as DICOM &SR…",
                                             self.send_read_as_sr)
        self.send_sr_action.setToolTip("A structured report of the findings, with the model's "
                                       "identity, in a new series of the image's study")
        self.auto_action = menu.addAction("Read each image &automatically")
        self.auto_action.setCheckable(True)
        self.auto_action.setChecked(self.auto_read)
        self.auto_action.toggled.connect(self._set_auto_read)
        self.batch.add_actions(menu)
        menu.addSeparator()
        self.saliency.add_actions(menu)
        self.overlay_action = self.saliency.overlay_action
        menu.addSeparator()
        self.tensorrt_action = menu.addAction("Use &TensorRT (NVIDIA GPUs)")
        self.tensorrt_action.setCheckable(True)
        self.tensorrt_action.setChecked(bool(self.app_session.settings.use_tensorrt))
        self.tensorrt_action.setToolTip("Faster on NVIDIA GPUs once its engine is built "
                                        "(the first load of a model takes longer)")
        self.tensorrt_action.toggled.connect(self.set_use_tensorrt)
        self.refresh_model_menu()

    def _connect(self) -> None:
        events = self.app_session.events
        subscribe(self, events.image_shown, self._on_image_shown)
        subscribe(self, events.image_gone, self._on_image_failed)
        subscribe(self, events.catalogs_closed, self._on_image_failed)
        subscribe(self, events.models_changed, lambda _none: self.refresh_models())
        subscribe(self, events.settings_changed, self._on_settings_changed)
        subscribe(self, events.evaluation_requested,
                  lambda request: self.show_evaluate_dialog(*request))
        self.view.frame_changed.connect(self._on_frame_changed)
        panel = self.panel
        panel.run_button.clicked.connect(self.read_current)
        panel.read_anyway_button.clicked.connect(lambda: self.read_current(out_of_scope=True))
        panel.batch_button.clicked.connect(self.batch.run_on_open)
        panel.folder_button.clicked.connect(self.batch.choose_folder)
        self.saliency.connect_panel()

    # ------------------------------------------------------------ dock sizes
    def _on_results_dock_visible(self, visible: bool) -> None:
        if visible and not self._results_dock_fitted:
            self._results_dock_fitted = True
            QTimer.singleShot(0, self.fit_results_dock)

    def fit_results_dock(self) -> None:
        """Give the results dock the height of its content (up to 60 % of the window), so
        panels sharing its side do not squeeze the bars out of view."""
        dock = self.results_dock
        window = self.shell.dialog_parent()
        if dock.isFloating() or not dock.isVisible():
            return
        title = dock.fontMetrics().height() + 12
        wanted = min(self.panel.sizeHint().height() + title, int(window.height() * 0.6))
        if dock.height() < wanted:
            self.shell.resize_panel(dock, wanted)

    # ------------------------------------------------------------ workers
    def start(self, worker: JobWorker) -> JobWorker:
        """Start an AI job this reader tracks (and cancels and joins at shutdown)."""
        self._workers.add(worker)
        worker.ended.connect(lambda: self._workers.discard(worker))
        worker.start()
        return worker

    @property
    def is_busy(self) -> bool:
        """Whether any AI job (load, read, saliency, batch, import) is still running."""
        return any(worker.is_running() for worker in self._workers)

    def wait_for_workers(self, timeout_ms: int = 10_000) -> None:
        """Cancel and join every AI job (close handlers, tests)."""
        self._closed = True
        for timer in (self._read_timer, self._startup_timer):
            timer.stop()
        if self.opacity_save_timer.isActive():
            self.opacity_save_timer.stop()
            self.app_session.update_settings(overlay_opacity=self.overlay.opacity)
        for worker in list(self._workers):
            worker.wait(timeout_ms)
        if self.message_box is not None:
            self.message_box.close()
        for dialog in (self.info_dialog, self.models_dialog):
            if dialog is not None:
                dialog.close()

    def status(self, sentence: str, ms: int = 10_000) -> None:
        self.shell.show_status(sentence, ms)

    # ------------------------------------------------------------ models
    def installed_models(self) -> list[ModelEntry]:
        from medviewer.inference.registry import list_models

        return list_models()

    def refresh_model_menu(self) -> None:
        """Rebuild Models > Active model from the registry (built-in and user models)."""
        for action in self._model_group.actions():
            self._model_group.removeAction(action)
        self.active_menu.clear()
        from medviewer.app.training_export import model_origin

        entries = self.installed_models()
        for entry in entries:
            origin = model_origin(entry)  # built-in, trained here or imported
            label = f"{entry.name} {entry.version}" + (f"  ({origin})" if origin != "built-in"
                                                       else "")
            action = self.active_menu.addAction(label)
            action.setCheckable(True)
            action.setData(entry.key)
            action.setChecked(self.entry is not None and entry.key == self.entry.key)
            action.triggered.connect(lambda _c=False, key=entry.key: self.choose_model(key))
            self._model_group.addAction(action)
        if not entries:
            self.active_menu.addAction("No models installed: use Import model…").setEnabled(False)

    def model_actions(self) -> list[QAction]:
        self.refresh_model_menu()
        return self._model_group.actions()

    def load_default_model(self) -> None:
        """At start-up: load ``settings.default_model`` (else the first built-in model)."""
        self._startup_timer.stop()
        if self._closed or self.entry is not None:
            return
        from medviewer.inference.registry import ModelError, resolve_model

        if not self.installed_models():
            self._show_model_error("No AI model is installed: import one with Models > "
                                   "Import model….", quiet=True)
            return
        default = self.app_session.settings.default_model
        try:
            entry = resolve_model(None, default or None)
        except ModelError as exc:
            if not default:
                self._show_model_error(str(exc), quiet=True)
                return
            try:  # the remembered model was removed: fall back to the first one
                entry = resolve_model(None, None)
            except ModelError:
                self._show_model_error(str(exc), quiet=True)
                return
            self.status(f"{exc} Using {entry.name} {entry.version} instead.")
        self._load(entry)

    def choose_model(self, key: str) -> bool:
        """Make a model the active one (and the default next time); loads it on a worker."""
        from medviewer.inference.registry import ModelError, resolve_model

        self._startup_timer.stop()
        try:
            entry = resolve_model(key)
        except ModelError as exc:
            self._show_model_error(str(exc))
            return False
        self.app_session.update_settings(default_model=entry.key)
        self._load(entry)
        return True

    def _load(self, entry: ModelEntry) -> None:
        if self._loader is not None:
            self._loader.cancel()  # its result is dropped: a newer choice wins
        self._cancel_reads()
        self.state.choose(entry)
        self.saliency.model_changed()
        self.panel.clear_result()
        self.panel.show_model(entry, detail="loading…")
        self.panel.show_status(f"Loading {entry.name} {entry.version}…")
        self._set_provider_field(f"AI: loading {entry.name}…", entry.key)
        self._read_pending = self.view.instance is not None and self.auto_read
        use_tensorrt = bool(self.app_session.settings.use_tensorrt)
        worker = JobWorker(lambda cancel: load_model_job(entry, use_tensorrt, cancel),
                           "loading the AI model")
        worker.finished.connect(self._on_model_loaded)
        worker.failed.connect(self._on_model_failed)
        self._loader = worker
        self.start(worker)
        for action in self._model_group.actions():
            action.setChecked(action.data() == entry.key)

    @property
    def is_loading(self) -> bool:
        return self._loader is not None and self._loader.is_running()

    def _on_model_loaded(self, loaded: LoadedModel) -> None:
        if self.sender() is not self._loader:
            return
        self._loader = None
        session = loaded.session
        provider = provider_name(session.provider)
        detail = f"loaded in {loaded.load_seconds:.2f} s, warm-up {loaded.warm_up_seconds:.2f} s"
        self.panel.show_model(self.entry, session.provider, session.notice, detail)
        self._set_provider_field(f"AI: {provider}" + (" ⚠" if session.notice else ""),
                                 f"{self.entry.key} runs on {provider}."
                                 + (f" {session.notice}" if session.notice else ""))
        self.saliency.update_controls()
        if session.notice:
            self.status(session.notice, 15_000)
        if self.view.instance is None:
            self.panel.show_status("Show an image to read it with the model.")
        self.state.model_loaded(loaded)
        self.model_ready.emit(session)
        if self._read_pending and self.view.instance is not None:
            self.read_current()
        self._read_pending = False

    def _on_model_failed(self, sentence: str) -> None:
        if self.sender() is not self._loader:
            return
        self._loader = None
        self._show_model_error(sentence)
        self.model_failed.emit(sentence)

    def _show_model_error(self, sentence: str, quiet: bool = False) -> None:
        self.state.model_unusable(sentence)
        self.panel.clear_result()
        self.overlay.clear()
        self.panel.show_model(self.entry, detail="not loaded")
        self.panel.show_status(sentence, error=True)
        self._set_provider_field("AI: unavailable" if self.entry else "AI: no model", sentence)
        if not quiet:
            self.status(sentence, 15_000)

    def _set_provider_field(self, text: str, tip: str) -> None:
        self.provider_field.setText(text)
        self.provider_field.setToolTip(tip)

    def set_use_tensorrt(self, on: bool) -> None:
        """Models > Use TensorRT: saved in settings; the active model is reloaded."""
        self.app_session.update_settings(use_tensorrt=bool(on))
        if self.entry is not None:
            self._load(self.entry)

    # ------------------------------------------------------------ dialogs
    def show_model_info(self) -> ModelInfoDialog | None:
        if self.entry is None:
            self.status(self.state.error or "No AI model is loaded.")
            return None
        if self.info_dialog is not None:
            self.info_dialog.close()
            self.info_dialog.deleteLater()
        provider = self._provider_text()
        self.info_dialog = ModelInfoDialog(self.entry, provider, self.shell.dialog_parent())
        self.info_dialog.show()
        self.info_dialog.raise_()
        return self.info_dialog

    def _provider_text(self) -> str:
        model = self.model
        if model is None:
            return ""
        text = provider_name(model.provider)
        return f"{text} ({model.notice})" if model.notice else text

    def show_evaluate_dialog(self, pairs: list[tuple[Path, str]] | None = None,
                             source: str = ""):
        """Models > Evaluate on labelled images… (a CSV of path,label), or the pairs of a
        label set (the label panel's Labels > Evaluate the AI on this label set…)."""
        from medviewer.gui.evaluate_dialog import EvaluateDialog
        from medviewer.inference.registry import list_models

        entries = list_models()
        if not entries:
            self.status("No AI model is installed: import one with Models > Import model….")
            return None
        dialog = EvaluateDialog(entries, self.entry.key if self.entry else "", pairs=pairs,
                                source=source, parent=self.shell.dialog_parent())
        dialog.validation_saved.connect(lambda _key: self._refresh_models_dialog())
        return self.shell.keep_dialog(dialog)

    def show_models_dialog(self) -> ModelsDialog:
        if self.models_dialog is None:
            self.models_dialog = ModelsDialog(self.shell.dialog_parent())
            self.models_dialog.use_requested.connect(self._use_from_dialog)
            self.models_dialog.import_requested.connect(self.choose_model_to_import)
        self._refresh_models_dialog()
        self.models_dialog.show()
        self.models_dialog.raise_()
        return self.models_dialog

    def refresh_models(self) -> None:
        """Re-read the registry after a model was added elsewhere (import, training wizard)."""
        self.refresh_model_menu()
        self._refresh_models_dialog()

    def _refresh_models_dialog(self) -> None:
        if self.models_dialog is None:
            return
        from medviewer.inference.registry import scan_models

        entries, problems = scan_models()
        self.models_dialog.set_entries(entries, problems, self.entry.key if self.entry else "",
                                       self._provider_text())

    def _use_from_dialog(self, key: str) -> None:
        self.choose_model(key)
        self._refresh_models_dialog()

    def choose_model_to_import(self) -> None:
        """Models > Import model…: pick the .onnx file (and its card when not beside it)."""
        onnx_name, _ = QFileDialog.getOpenFileName(
            self.shell.dialog_parent(), "Import an AI model", str(Path.home()),
            "ONNX models (*.onnx)")
        if not onnx_name:
            return
        onnx_path = Path(onnx_name)
        card_path: Path | None = onnx_path.with_suffix(".json")
        if not card_path.is_file():
            card_name, _ = QFileDialog.getOpenFileName(
                self.shell.dialog_parent(), f"Model card for {onnx_path.name}",
                str(onnx_path.parent),
                "Model cards (*.json)")
            if not card_name:
                return
            card_path = Path(card_name)
        self.import_model_files(onnx_path, card_path)

    def import_model_files(self, onnx_path: Path, card_path: Path | None = None) -> JobWorker:
        """Check and install a model on a worker; a refusal is one sentence in a message box."""
        onnx_path = Path(onnx_path)
        card = Path(card_path) if card_path else None
        worker = JobWorker(lambda cancel: import_model_job(onnx_path, card, cancel),
                           "importing the AI model")
        worker.finished.connect(self._on_imported)
        worker.failed.connect(self._on_import_failed)
        self._importer = worker
        self.status(f"Checking the model {onnx_path.name}…", 30_000)
        return self.start(worker)

    def _on_imported(self, entry: ModelEntry) -> None:
        self._importer = None
        self.refresh_model_menu()
        self.status(f"Imported the model {entry.name} {entry.version}; it is now in use.")
        self.choose_model(entry.key)
        self._refresh_models_dialog()
        self.import_ended.emit("finished")

    def _on_import_failed(self, sentence: str) -> None:
        self._importer = None
        self.status(sentence, 15_000)
        self._show_message("Model not imported", sentence)
        self.import_ended.emit("failed")

    def _show_message(self, title: str, sentence: str) -> None:
        if self.message_box is not None:
            self.message_box.close()
        box = QMessageBox(QMessageBox.Icon.Warning, title, sentence,
                          QMessageBox.StandardButton.Ok, self.shell.dialog_parent())
        box.setObjectName("aiMessageBox")
        box.setModal(False)  # the app keeps working while it is open
        box.show()
        self.message_box = box

    # ------------------------------------------------------------ the PDF report
    def choose_report_file(self) -> JobWorker | None:
        """Models > Save a report of this read: ask where, then write it on a worker."""
        instance = self.view.instance
        if instance is None or self.model is None:
            self.status("Show an image and load a model first; the report reads that image.")
            return None
        suggested = Path.home() / f"{Path(instance.path).stem}-ai-report.pdf"
        name, _ = QFileDialog.getSaveFileName(self.shell.dialog_parent(), "Save the AI report",
                                              str(suggested), "PDF (*.pdf)")
        if not name:
            return None
        return self.save_report(Path(name))

    def save_report(self, output: Path, deidentify: bool = False) -> JobWorker | None:
        """Write the PDF report of the shown frame (app/report.py), the reader's label in
        the chosen label set included, on a worker."""
        from medviewer.app.report import ReportRequest, report_job

        instance = self.view.instance
        if instance is None or self.model is None:
            self.status("Show an image and load a model first; the report reads that image.")
            return None
        labelling = self.app_session.labelling
        request = ReportRequest(
            image=Path(instance.path), model=self.model, output=Path(output),
            deidentify=deidentify, frame=self.view.frame, class_name=self.state.chosen_class,
            opacity=self.overlay.opacity, reader=labelling.reader,
            label_set=labelling.label_set.name if labelling.label_set else None,
            store_path=labelling.store_path)  # the store the label panel works in
        worker = JobWorker(lambda cancel: report_job(request, cancel),
                           "writing the AI report")
        worker.finished.connect(lambda result: self.status(
            f"Wrote the AI report {result.output} ({result.pages} page"
            f"{'' if result.pages == 1 else 's'}).", 15_000))
        worker.failed.connect(lambda sentence: self._show_message("Report not written",
                                                                  sentence))
        self.status(f"Writing the AI report {Path(output).name}…", 30_000)
        return self.start(worker)

    def send_read_as_sr(self) -> JobWorker | None:
        """Write the shown read as a DICOM SR (app/dicom_results.py) on a worker, then ask
        the shell to send it to a PACS."""
        from medviewer.app.dicom_results import write_ai_reports
        from medviewer.paths import user_cache_dir

        read = self.read
        if read is None:
            self.status("Read a DICOM image with the AI first; its result is what is sent.")
            return None
        prediction = read.prediction
        outbox = user_cache_dir() / "sr-outbox"

        def job(_cancel: CancelFlag):
            yield Progress(0, 1, "Writing the structured report")
            return write_ai_reports([prediction], outbox)

        def written(result) -> None:
            if result.paths:
                self.app_session.request_send(result.paths)
            else:
                why = result.skipped[0][1] if result.skipped else "nothing to write"
                self.status(f"No structured report was written for {Path(prediction.path).name}"
                            f": {why}.", 15_000)

        worker = JobWorker(job, "writing the structured report")
        worker.finished.connect(written)
        worker.failed.connect(lambda sentence: self.status(sentence, 15_000))
        return self.start(worker)

    # ------------------------------------------------------------ reading the shown image
    def _set_auto_read(self, on: bool) -> None:
        self.auto_read = bool(on)

    def _on_image_shown(self, instance: Any) -> None:
        if self._startup_timer.isActive():  # start-up: the first image is on screen now
            self._startup_timer.start(STARTUP_LOAD_AFTER_IMAGE_MS)
        self._cancel_reads()
        self.state.clear_read()
        self.overlay.clear()
        self.panel.clear_result()
        self.saliency.update_controls()
        if self.model is None:
            if self.is_loading:
                self._read_pending = self.auto_read
                self.panel.show_status("Waiting for the model to load…")
            elif self.state.error:
                self.panel.show_status(self.state.error, error=True)
            return
        if self.auto_read:
            self.panel.show_status(f"Reading {instance.path.name}…")
            self._read_timer.start()
        else:
            self.panel.show_status("Run AI (Ctrl+R) to read this image.")

    def _on_image_failed(self, _none: None = None) -> None:
        self.clear_image()

    def clear_image(self) -> None:
        """The shown image is gone (closed, or a file that could not be shown)."""
        self._cancel_reads()
        self.state.clear_read()
        self.overlay.clear()
        self.panel.clear_result()
        if self.model is not None:
            self.panel.show_status("No image shown.")

    def _on_frame_changed(self, index: int, _count: int) -> None:
        self.saliency.frame_changed(index)

    def _cancel_reads(self) -> None:
        self._read_timer.stop()
        if self._reader is not None:
            self._reader.cancel()
        self._reader = None
        self.saliency.stop_jobs()

    def _on_settings_changed(self, settings: Any) -> None:
        """Preferences: reading each image on open, and the overlay shown by default. Only
        a default that changed moves its toggle: any other saved setting (the opacity, the
        model) must leave the reader's own choice for this session alone."""
        defaults = (bool(settings.ai_auto_run), bool(settings.saliency_overlay))
        if defaults[0] != self._toggle_defaults[0]:
            self.auto_action.setChecked(defaults[0])
        if defaults[1] != self._toggle_defaults[1]:
            self.overlay_action.setChecked(defaults[1])
        self._toggle_defaults = defaults

    def read_current(self, out_of_scope: bool = False) -> JobWorker | None:
        """Run AI on the shown frame (Ctrl+R); a read still running for it is dropped.

        ``out_of_scope``: the reader pressed "Read anyway" for an image outside the model's
        intended use; the read is then shown as a finding and the audit log says so."""
        self._read_timer.stop()
        instance = self.view.instance
        if instance is None:
            self.status("Show an image first, then run the AI on it.")
            return None
        if self.model is None:
            if self.entry is None and not self.is_loading and not self._closed:
                self.load_default_model()
            if self.is_loading:
                self._read_pending = True
                self.panel.show_status("Waiting for the model to load…")
            else:
                self.status(self.state.error or "No AI model is loaded.")
            return None
        self._cancel_reads()
        model, frame, chosen = self.model, self.view.frame, self.state.chosen_class
        painter = self.saliency.painter()
        worker = JobWorker(
            lambda cancel: read_image_job(model, instance, frame, chosen, painter, cancel,
                                          read_out_of_scope=out_of_scope),
            "reading the image with the AI model")
        worker.finished.connect(self._on_read)
        worker.failed.connect(self._on_read_failed)
        self._reader = worker
        self.panel.show_status(f"Reading {instance.path.name}…")
        return self.start(worker)

    def _on_read(self, read: ImageRead) -> None:
        if self.sender() is not self._reader:
            return  # a stale read: the user moved on
        self._reader = None
        if read.instance is not self.view.instance or not self.state.read_done(read):
            return
        self.panel.show_prediction(read.prediction, read.instance.path.name)
        self.saliency.show_read(read)
        self.read_finished.emit(read)

    def _on_read_failed(self, sentence: str) -> None:
        if self.sender() is not self._reader:
            return
        self._reader = None
        self.panel.clear_result()
        self.panel.show_status(sentence, error=True)
        self.status(sentence, 15_000)


def install_ai(shell: Shell, session: Session, view: ImageView) -> AiReader:
    """Add the AI reading workflow to a shell (menus, docks, status field, overlay)."""
    return AiReader(session, shell, view)
