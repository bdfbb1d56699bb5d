"""The PACS panel: search a PACS or DICOMweb server, retrieve, open, find priors, send results.

A standalone widget built with ``(session, shell)``: results show as patient > study >
series with counts (a study's series load when it is expanded); Retrieve (or a double-click)
fetches a study or series into the local cache on a worker and asks the session to open the
first image as soon as it has arrived, then the whole study when it is complete. Priors lists
the selected study's patient's other studies. :meth:`PacsPanel.send_files` sends given files
(the SRs of an AI read, a label export) to the chosen server.

Every network call runs as a job (``medviewer.pacs.operations``) on a
:class:`~medviewer.gui.workers.JobWorker`; failures are the job's one sentence.

To install it in the main window: ``panel = PacsPanel(session, shell)`` then
``shell.add_panel("pacs", "PACS", panel)`` (see the integrator's note in docs/pacs.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medviewer.app.session import Session
from medviewer.errors import UserError
from medviewer.gui.shell import Shell
from medviewer.gui.widgets import wrapping_label
from medviewer.gui.workers import JobWorker
from medviewer.jobs import Progress
from medviewer.pacs import servers
from medviewer.pacs.cache import RetrieveCache, default_cache_root
from medviewer.pacs.query import (
    SeriesRow,
    StudyQuery,
    StudyRow,
    group_by_patient,
    parse_date_range,
)

ERROR_STYLE = "color: #b00020;"
MODALITIES = ("", "CR", "DX", "CT", "MR", "US", "MG", "PT", "NM", "XA", "SR")
_KIND = Qt.ItemDataRole.UserRole  # "patient", "study" or "series"
_VALUE = Qt.ItemDataRole.UserRole + 1  # the StudyRow or SeriesRow


def _date_text(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 else value


def person_name(value: str) -> str:
    """A DICOM person name as people write it: 'Garcia^Maria' -> 'Garcia, Maria'."""
    parts = [p for p in value.split("=")[0].split("^") if p]
    if not parts:
        return ""
    return parts[0] + (", " + " ".join(parts[1:]) if len(parts) > 1 else "")


def _count(value: int | None) -> str:
    return "" if value is None else str(value)


class PacsPanel(QWidget):
    COLUMNS = ("Patient / study / series", "Date", "Modality", "Series", "Images",
               "Patient ID / accession")

    def __init__(self, session: Session, shell: Shell, *,
                 open_study_uids: Callable[[], Iterable[str]] | None = None,
                 cache: RetrieveCache | None = None) -> None:
        super().__init__()
        self.setObjectName("pacsPanel")
        self.session = session
        self.shell = shell
        self._open_study_uids = open_study_uids or (lambda: ())
        self._given_cache = cache  # a test's; else the settings' (cache())
        self._cache: RetrieveCache | None = None
        self._opened: set[str] = set()  # studies this panel asked to open
        self._search_worker: JobWorker | None = None
        self._transfer_worker: JobWorker | None = None
        self._series_workers: dict[str, JobWorker] = {}
        self.last_retrieved: list[Path] = []

        self.server_box = QComboBox()
        self.server_box.setObjectName("pacsServer")
        settings_button = QPushButton("Servers…")
        settings_button.setObjectName("pacsServers")
        settings_button.clicked.connect(self.edit_servers)
        server_row = QHBoxLayout()
        server_row.addWidget(self.server_box, 1)
        server_row.addWidget(settings_button)

        self.patient_id = QLineEdit()
        self.patient_name = QLineEdit()
        self.patient_name.setPlaceholderText("a prefix; * and ? are wildcards")
        self.study_dates = QLineEdit()
        self.study_dates.setPlaceholderText("FROM-TO, e.g. 20240101-20240630")
        self.modality = QComboBox()
        self.modality.setEditable(True)
        self.modality.addItems(MODALITIES)
        self.accession = QLineEdit()
        for field in (self.patient_id, self.patient_name, self.study_dates, self.accession):
            field.returnPressed.connect(self.search)
        form = QFormLayout()
        form.addRow("Patient ID", self.patient_id)
        form.addRow("Patient name", self.patient_name)
        form.addRow("Study date", self.study_dates)
        form.addRow("Modality", self.modality)
        form.addRow("Accession", self.accession)
        self.search_button = QPushButton("Search")
        self.search_button.setObjectName("pacsSearch")
        self.search_button.clicked.connect(self.search)

        self.tree = QTreeWidget()
        self.tree.setObjectName("pacsResults")
        self.tree.setColumnCount(len(self.COLUMNS))
        self.tree.setHeaderLabels(list(self.COLUMNS))
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.itemExpanded.connect(self._expanded)
        self.tree.itemDoubleClicked.connect(lambda item, _col: self.retrieve_item(item))
        self.tree.itemSelectionChanged.connect(self._update_buttons)

        self.retrieve_button = QPushButton("Retrieve and open")
        self.retrieve_button.setObjectName("pacsRetrieve")
        self.retrieve_button.clicked.connect(lambda: self.retrieve_item(self._selected()))
        self.priors_button = QPushButton("Priors")
        self.priors_button.setObjectName("pacsPriors")
        self.priors_button.setToolTip("This patient's other studies on the server")
        self.priors_button.clicked.connect(self.show_priors)
        self.send_button = QPushButton("Send files…")
        self.send_button.setObjectName("pacsSend")
        self.send_button.setToolTip("Send DICOM files (e.g. AI or label SRs) to the server")
        self.send_button.clicked.connect(self._choose_and_send)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("pacsCancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.hide()
        buttons = QHBoxLayout()
        for button in (self.retrieve_button, self.priors_button, self.send_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        self.progress = QProgressBar()
        self.progress.setObjectName("pacsProgress")
        self.progress.hide()
        self.message = wrapping_label("pacsMessage")

        layout = QVBoxLayout(self)
        layout.addLayout(server_row)
        layout.addLayout(form)
        layout.addWidget(self.search_button)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.message)
        self.reload_servers()
        # Results belong to the server they came from.
        self.server_box.currentTextChanged.connect(lambda _name: self._clear_results())
        self._update_buttons()
        shell.add_shutdown_step(self._shut_down, order=20)

    # ------------------------------------------------------------ servers
    def reload_servers(self, select: str | None = None) -> None:
        current = select or self.server_box.currentText()
        self.server_box.clear()
        try:
            config = servers.load_config()
        except UserError as exc:
            self._say(str(exc), error=True)
            return
        for server in config.servers:
            self.server_box.addItem(server.name)
        index = self.server_box.findText(current)
        if index >= 0:
            self.server_box.setCurrentIndex(index)
        if not config.servers:
            self._say("No server is configured yet: add one with Servers….")
        self._config = config

    def edit_servers(self) -> None:
        from medviewer.gui.pacs_server_dialog import ServerDialog

        dialog = ServerDialog(self.shell.dialog_parent(), select=self.server_box.currentText())
        dialog.servers_changed.connect(self.reload_servers)
        dialog.exec()

    def server(self) -> servers.ServerConfig | None:
        name = self.server_box.currentText()
        try:
            return servers.load_config().find(name) if name else None
        except UserError as exc:
            self._say(str(exc), error=True)
            return None

    def _secret(self, server: servers.ServerConfig) -> str | None | bool:
        """The server's secret, asked for once a session if needed; False if the user declined."""
        if not server.needs_secret:
            return None
        secret = servers.secrets.get(server.name)
        if secret:
            return secret
        what = "password" if server.auth == "basic" else "token"
        text, ok = QInputDialog.getText(self.shell.dialog_parent(), "PACS sign-in",
                                        f"The {what} for {server.name}:",
                                        QLineEdit.EchoMode.Password)
        if not ok or not text:
            return False
        notice = servers.secrets.set(server.name, text, remember=True)
        if notice:
            self.shell.show_status(notice, 10_000)
        return text

    # ------------------------------------------------------------ search
    def query(self) -> StudyQuery:
        start, end = (parse_date_range(self.study_dates.text())
                      if self.study_dates.text().strip() else (None, None))
        return StudyQuery(patient_id=self.patient_id.text(),
                          patient_name=self.patient_name.text(), date_from=start, date_to=end,
                          modality=self.modality.currentText(),
                          accession=self.accession.text())

    def search(self) -> None:
        try:
            query = self.query()
        except UserError as exc:
            self._say(str(exc), error=True)
            return
        self._run_search(query, "Searching")

    def show_priors(self) -> None:
        item = self._selected()
        study = self._study_of(item)
        if study is None:
            self._say("Select a study to see the patient's other studies.")
            return
        from medviewer.pacs.operations import priors_job

        self._run_search(None, f"Finding priors of {study.patient_name or study.patient_id}",
                         factory=lambda server, secret: (
                             lambda cancel: priors_job(server, study, secret, cancel)),
                         keep=study)

    def _run_search(self, query: StudyQuery | None, what: str, factory=None,
                    keep: StudyRow | None = None) -> None:
        from medviewer.pacs.operations import find_studies_job

        server = self.server()
        if server is None or self._search_worker is not None:
            if server is None:
                self._say("Choose a server first (Servers… adds one).", error=True)
            return
        secret = self._secret(server)
        if secret is False:
            return
        if factory is None:
            job = lambda cancel: find_studies_job(server, query, secret, cancel)
        else:
            job = factory(server, secret)
        self._say(f"{what} on {server.name}…")
        self.search_button.setEnabled(False)
        worker = JobWorker(job, f"searching {server.name}")
        # Results belong to the server asked: one changed meanwhile has cleared the tree.
        worker.finished.connect(lambda studies, name=server.name: self._show_studies(
            studies, keep) if self.server_box.currentText() == name else None)
        worker.failed.connect(lambda sentence: self._fail(sentence))
        worker.ended.connect(self._search_ended)
        self._search_worker = worker
        worker.start()

    def _search_ended(self) -> None:
        self._search_worker = None
        self.search_button.setEnabled(True)

    def _show_studies(self, studies: list[StudyRow], keep: StudyRow | None = None) -> None:
        if keep is not None:  # priors: the study itself first, then the others
            studies = [keep, *studies]
        self.tree.clear()
        for patient in group_by_patient(studies):
            n = len(patient.studies)
            title = (f"{person_name(patient.patient_name) or '(no name)'} "
                     f"({n} stud{'y' if n == 1 else 'ies'})")
            top = QTreeWidgetItem([title, "", "", "", "", patient.patient_id])
            top.setData(0, _KIND, "patient")
            self.tree.addTopLevelItem(top)
            for study in patient.studies:
                child = QTreeWidgetItem([study.description or "(no description)",
                                         _date_text(study.date), "/".join(study.modalities),
                                         _count(study.series_count),
                                         _count(study.instance_count), study.accession])
                child.setData(0, _KIND, "study")
                child.setData(0, _VALUE, study)
                child.setChildIndicatorPolicy(
                    QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
                top.addChild(child)
            top.setExpanded(True)
        for column in range(len(self.COLUMNS)):
            self.tree.resizeColumnToContents(column)
        n = len(studies) - (1 if keep is not None else 0)
        if keep is not None:
            self._say(f"{n} other stud{'y' if n == 1 else 'ies'} of this patient.")
        else:
            self._say(f"{n} stud{'y' if n == 1 else 'ies'} found.")
        self._update_buttons()

    def _expanded(self, item: QTreeWidgetItem) -> None:
        if item.data(0, _KIND) != "study" or item.childCount() or \
                item.data(0, _VALUE).study_uid in self._series_workers:
            return
        from medviewer.pacs.operations import find_series_job

        server = self.server()
        secret = self._secret(server) if server is not None else False
        if server is None or secret is False:
            return
        study: StudyRow = item.data(0, _VALUE)
        worker = JobWorker(lambda cancel: find_series_job(server, study.study_uid, secret,
                                                          cancel), "listing series")
        worker.finished.connect(lambda rows: self._show_series(item, rows))
        worker.failed.connect(self._fail)
        worker.ended.connect(lambda: self._series_workers.pop(study.study_uid, None))
        self._series_workers[study.study_uid] = worker
        worker.start()

    def _show_series(self, item: QTreeWidgetItem, rows: list[SeriesRow]) -> None:
        if not shiboken6.isValid(item):  # the results were cleared while it was listed
            return
        for row in rows:
            child = QTreeWidgetItem([row.description or f"Series {_count(row.number)}", "",
                                     row.modality, _count(row.number), _count(row.instances),
                                     ""])
            child.setData(0, _KIND, "series")
            child.setData(0, _VALUE, row)
            item.addChild(child)
        if not rows:
            item.setChildIndicatorPolicy(
                QTreeWidgetItem.ChildIndicatorPolicy.DontShowIndicatorWhenChildless)

    # ------------------------------------------------------------ retrieve
    def cache(self) -> RetrieveCache:
        """The retrieve cache in the folder and size the settings (Preferences) name."""
        if self._given_cache is not None:
            return self._given_cache
        settings = self.session.settings
        root = Path(settings.retrieve_cache_dir).expanduser() if settings.retrieve_cache_dir \
            else default_cache_root()
        limit = int(settings.retrieve_cache_mb) * 1024 * 1024
        if self._cache is None or (self._cache.root, self._cache.limit_bytes) != (root, limit):
            self._cache = RetrieveCache(root, limit)
        return self._cache

    def retrieve_item(self, item: QTreeWidgetItem | None) -> None:
        """Retrieve the study or series of ``item`` and open it as it arrives."""
        if item is None or item.data(0, _KIND) not in ("study", "series"):
            self._say("Select a study or a series to retrieve.")
            return
        if self._transfer_worker is not None:
            self._say("A retrieve or send is running; cancel it or wait for it to finish.")
            return
        value = item.data(0, _VALUE)
        study_uid = value.study_uid
        series_uid = value.series_uid if item.data(0, _KIND) == "series" else None
        server = self.server()
        secret = self._secret(server) if server is not None else False
        if server is None or secret is False:
            return
        from medviewer.pacs.operations import InstanceArrived, retrieve_to_cache_job

        cache = self.cache()
        keep_open = set(self._open_study_uids()) | self._opened
        self.last_retrieved = []

        def job(cancel):
            return retrieve_to_cache_job(server, study_uid, series_uid, cache=cache,
                                         open_study_uids=keep_open, secret=secret,
                                         cancel=cancel)

        def on_event(event) -> None:
            if isinstance(event, InstanceArrived):
                self.last_retrieved.append(event.path)
                self.progress.setRange(0, event.total or 0)
                self.progress.setValue(event.done)
                self.progress.setFormat(f"%v of {event.total}" if event.total else "%v")
                if event.first:  # show the first image now; the rest stream in
                    self._opened.add(study_uid)
                    self.session.request_open([event.path])
            elif isinstance(event, Progress):
                self.message.setText(event.message)

        what = "series" if series_uid else "study"
        self._start_transfer(job, f"retrieving a {what} from {server.name}", on_event,
                             lambda result: self._retrieved(result, series_uid),
                             f"Retrieving the {what} from {server.name}…")

    def _retrieved(self, result, series_uid: str | None) -> None:
        from medviewer.pacs.cache import safe_name

        folder = result.folder / safe_name(series_uid) if series_uid else result.folder
        self._say(f"Retrieved {len(result.paths)} instances in {result.seconds:.1f} s.")
        if result.paths:
            self.session.request_open([folder])

    # ------------------------------------------------------------ send
    def _choose_and_send(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self.shell.dialog_parent(), "Send to PACS", "",
                                                "DICOM files (*.dcm);;All files (*)")
        if paths:
            self.send_files([Path(p) for p in paths])

    def send_files(self, paths: list[Path]) -> None:
        """Send these files (e.g. the SRs of an AI read) to the chosen server."""
        server = self.server()
        if server is None:
            self._say("Choose a server to send to (Servers… adds one).", error=True)
            return
        if self._transfer_worker is not None:
            self._say("A retrieve or send is running; cancel it or wait for it to finish.")
            return
        secret = self._secret(server)
        if secret is False:
            return
        from medviewer.pacs.operations import send_job

        def on_event(event) -> None:
            if isinstance(event, Progress) and event.total:
                self.progress.setRange(0, event.total)
                self.progress.setValue(event.done)

        self._start_transfer(lambda cancel: send_job(server, paths, secret, cancel),
                             f"sending files to {server.name}", on_event,
                             lambda result: self._say(f"Sent {result.sent} files to "
                                                      f"{server.name}."),
                             f"Sending {len(paths)} files to {server.name}…")

    # ------------------------------------------------------------ shared job plumbing
    def _start_transfer(self, job, description: str, on_event, on_finished, message: str):
        self._say(message)
        self.progress.setRange(0, 0)
        self.progress.setFormat("%v")
        self.progress.show()
        self.cancel_button.show()
        worker = JobWorker(job, description)
        worker.event.connect(on_event)
        worker.finished.connect(on_finished)
        worker.failed.connect(self._fail)
        worker.cancelled.connect(self._cancelled)
        worker.ended.connect(self._transfer_ended)
        self._transfer_worker = worker
        self._update_buttons()
        worker.start()

    def _transfer_ended(self) -> None:
        self._transfer_worker = None
        self.progress.hide()
        self.cancel_button.hide()
        self._update_buttons()

    def _cancelled(self) -> None:
        kept = len(self.last_retrieved)
        self._say(f"Cancelled; {kept} instance{'' if kept == 1 else 's'} that arrived "
                  f"{'is' if kept == 1 else 'are'} kept." if kept else "Cancelled.")

    def cancel(self) -> None:
        for worker in (self._transfer_worker, self._search_worker):
            if worker is not None:
                worker.cancel()

    def is_busy(self) -> bool:
        return any(w is not None for w in (self._transfer_worker, self._search_worker)) \
            or bool(self._series_workers)

    # ------------------------------------------------------------ helpers
    def _clear_results(self) -> None:
        for worker in self._series_workers.values():  # their rows are going
            worker.cancel()
        self.tree.clear()
        self._say("")
        self._update_buttons()

    def _selected(self) -> QTreeWidgetItem | None:
        items = self.tree.selectedItems()
        return items[0] if items else None

    def _study_of(self, item: QTreeWidgetItem | None) -> StudyRow | None:
        while item is not None and item.data(0, _KIND) != "study":
            item = item.parent()
        return item.data(0, _VALUE) if item is not None else None

    def _update_buttons(self) -> None:
        item = self._selected()
        kind = item.data(0, _KIND) if item is not None else None
        busy = self._transfer_worker is not None
        self.retrieve_button.setEnabled(kind in ("study", "series") and not busy)
        self.priors_button.setEnabled(kind in ("study", "series"))
        self.send_button.setEnabled(not busy)

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet(ERROR_STYLE if error else "")
        self.message.setText(text)

    def _fail(self, sentence: str) -> None:
        self._say(sentence, error=True)
        self.shell.report_error(sentence)

    def _shut_down(self, timeout_ms: int) -> None:
        workers = [self._transfer_worker, self._search_worker, *self._series_workers.values()]
        for worker in workers:
            if worker is not None:
                worker.wait(timeout_ms)
