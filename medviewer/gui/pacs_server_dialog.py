"""Settings > PACS servers: add, change, remove and verify the configured servers.

Secrets (DICOMweb passwords and tokens) go to the keyring, or stay in memory for this session
where there is none (the dialog says so); they are never written to the server list.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from medviewer.errors import UserError
from medviewer.gui.widgets import wrapping_label
from medviewer.gui.workers import JobWorker
from medviewer.pacs import servers
from medviewer.pacs.servers import ServerConfig

ERROR_STYLE = "color: #b00020;"


class ServerDialog(QDialog):
    """Edit the server list; ``servers_changed`` fires after every save or removal."""

    servers_changed = Signal()

    def __init__(self, parent: QWidget | None = None, select: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("PACS servers")
        self.setObjectName("pacsServerDialog")
        self._worker: JobWorker | None = None
        self._editing: str | None = None
        self.server_list = QListWidget()
        self.server_list.setObjectName("pacsServerList")
        self.server_list.currentTextChanged.connect(self._show_server)
        new_button = QPushButton("New")
        new_button.clicked.connect(self._new_server)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self._remove)
        left = QVBoxLayout()
        left.addWidget(self.server_list)
        row = QHBoxLayout()
        row.addWidget(new_button)
        row.addWidget(self.remove_button)
        left.addLayout(row)

        self.name = QLineEdit()
        self.kind = QComboBox()
        self.kind.addItem("PACS (DIMSE)", "dimse")
        self.kind.addItem("DICOMweb", "dicomweb")
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.calling_ae = QLineEdit(servers.DEFAULT_CALLING_AE)
        self.timeout = QDoubleSpinBox()
        self.timeout.setRange(1, 3600)
        self.timeout.setSuffix(" s")
        self.timeout.setValue(servers.DEFAULT_TIMEOUT_S)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Kind", self.kind)
        form.addRow("MedViewer's AE title", self.calling_ae)
        form.addRow("Timeout per call", self.timeout)

        # DIMSE fields
        self.ae_title = QLineEdit()
        self.host = QLineEdit()
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(104)
        self.retrieve_method = QComboBox()
        self.retrieve_method.addItem("C-GET (nothing to register on the PACS)", "get")
        self.retrieve_method.addItem("C-MOVE to MedViewer (register it on the PACS)", "move")
        self.move_port = QSpinBox()
        self.move_port.setRange(1, 65535)
        self.move_port.setValue(11112)
        dimse_page = QWidget()
        dimse_form = QFormLayout(dimse_page)
        dimse_form.addRow("PACS AE title", self.ae_title)
        dimse_form.addRow("Host", self.host)
        dimse_form.addRow("Port", self.port)
        dimse_form.addRow("Retrieve with", self.retrieve_method)
        dimse_form.addRow("C-MOVE port", self.move_port)

        # DICOMweb fields
        self.url = QLineEdit()
        self.url.setPlaceholderText("https://pacs.example.org/dicom-web")
        self.auth = QComboBox()
        for text, value in (("None", "none"), ("User name and password", "basic"),
                            ("Bearer token", "bearer")):
            self.auth.addItem(text, value)
        self.username = QLineEdit()
        self.secret = QLineEdit()
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret.setPlaceholderText("unchanged")
        self.remember = QCheckBox("Remember in the system keyring")
        keyring_notice = servers.secrets.notice()
        self.remember.setChecked(keyring_notice is None)
        self.remember.setEnabled(keyring_notice is None)
        self.ca_file = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_ca)
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.ca_file)
        ca_row.addWidget(browse)
        web_page = QWidget()
        web_form = QFormLayout(web_page)
        web_form.addRow("Base URL", self.url)
        web_form.addRow("Authentication", self.auth)
        web_form.addRow("User name", self.username)
        web_form.addRow("Password or token", self.secret)
        web_form.addRow("", self.remember)
        web_form.addRow("Trusted CA file", ca_row)
        if keyring_notice:
            notice = wrapping_label("pacsKeyringNotice")
            notice.setText(keyring_notice)
            web_form.addRow(notice)

        self.pages = QStackedWidget()
        self.pages.addWidget(dimse_page)
        self.pages.addWidget(web_page)
        self.message = wrapping_label("pacsServerMessage")
        self.test_button = QPushButton("Save and verify")
        self.test_button.setObjectName("pacsVerify")
        self.test_button.clicked.connect(self._save_and_verify)
        save_button = QPushButton("Save")
        save_button.setObjectName("pacsSave")
        save_button.clicked.connect(self.save)
        actions = QHBoxLayout()
        actions.addWidget(save_button)
        actions.addWidget(self.test_button)
        actions.addStretch(1)
        right = QVBoxLayout()
        right.addLayout(form)
        right.addWidget(self.pages)
        right.addWidget(self.message)
        right.addLayout(actions)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        body = QHBoxLayout()
        body.addLayout(left, 1)
        body.addLayout(right, 3)
        layout = QVBoxLayout(self)
        layout.addLayout(body)
        layout.addWidget(close)
        self._reload(select)

    # ------------------------------------------------------------ list
    def _reload(self, select: str | None = None) -> None:
        try:
            self._config = servers.load_config()
        except UserError as exc:
            self._config = servers.PacsConfig([])
            self._say(str(exc), error=True)
        self.server_list.blockSignals(True)
        self.server_list.clear()
        for server in self._config.servers:
            self.server_list.addItem(server.name)
        self.server_list.blockSignals(False)
        names = [s.name for s in self._config.servers]
        if names:
            self.server_list.setCurrentRow(names.index(select) if select in names else 0)
        else:
            self._new_server()

    def _show_server(self, name: str) -> None:
        server = next((s for s in self._config.servers if s.name == name), None)
        if server is None:
            return
        self._editing = server.name
        self.name.setText(server.name)
        self.kind.setCurrentIndex(0 if server.kind == "dimse" else 1)
        self.calling_ae.setText(server.calling_ae)
        self.timeout.setValue(server.timeout_s)
        self.ae_title.setText(server.ae_title)
        self.host.setText(server.host)
        self.port.setValue(server.port)
        self.retrieve_method.setCurrentIndex(0 if server.retrieve_method == "get" else 1)
        self.move_port.setValue(server.move_port)
        self.url.setText(server.url)
        self.auth.setCurrentIndex(["none", "basic", "bearer"].index(server.auth))
        self.username.setText(server.username)
        self.ca_file.setText(server.ca_file)
        self.secret.clear()
        self._say("")

    def _new_server(self) -> None:
        self._editing = None
        self.server_list.clearSelection()
        for field in (self.name, self.ae_title, self.host, self.url, self.username,
                      self.ca_file, self.secret):
            field.clear()
        self._say("")

    def _kind_changed(self, index: int) -> None:
        self.pages.setCurrentIndex(index)

    def _browse_ca(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Trusted CA file", "",
                                              "Certificates (*.pem *.crt *.cer);;All files (*)")
        if path:
            self.ca_file.setText(path)

    # ------------------------------------------------------------ save, remove, verify
    def current(self) -> ServerConfig:
        return ServerConfig(
            name=self.name.text(), kind=self.kind.currentData(), ae_title=self.ae_title.text(),
            host=self.host.text(), port=self.port.value(), url=self.url.text(),
            auth=self.auth.currentData(), username=self.username.text(),
            ca_file=self.ca_file.text().strip(), calling_ae=self.calling_ae.text(),
            retrieve_method=self.retrieve_method.currentData(),
            move_port=self.move_port.value(), timeout_s=self.timeout.value())

    def save(self) -> ServerConfig | None:
        try:
            server = self.current().checked()
            servers.put_server(server, replacing=self._editing)
        except UserError as exc:
            self._say(str(exc), error=True)
            return None
        notice = None
        if server.needs_secret and self.secret.text():
            notice = servers.secrets.set(server.name, self.secret.text(),
                                         remember=self.remember.isChecked())
            self.secret.clear()
        if self._editing and self._editing != server.name:
            servers.secrets.forget(self._editing)
        self._reload(server.name)
        self._say(notice or f"Saved '{server.name}'.")
        self.servers_changed.emit()
        return server

    def _remove(self) -> None:
        if not self._editing:
            return
        try:
            servers.remove_server(self._editing)
        except UserError as exc:
            self._say(str(exc), error=True)
            return
        removed, self._editing = self._editing, None
        self._reload()
        self._say(f"Removed '{removed}'.")
        self.servers_changed.emit()

    def _save_and_verify(self) -> None:
        server = self.save()
        if server is None or self._worker is not None:
            return
        from medviewer.pacs.operations import echo_job

        secret = servers.secrets.get(server.name) if server.needs_secret else None
        self._say(f"Verifying {server.address}…")
        self.test_button.setEnabled(False)
        worker = JobWorker(lambda cancel: echo_job(server, secret, cancel),
                           f"verifying {server.name}")
        worker.finished.connect(lambda ms: self._say(f"{server.name} answered in {ms:.0f} ms."))
        worker.failed.connect(lambda sentence: self._say(sentence, error=True))
        worker.ended.connect(self._verified)
        self._worker = worker
        worker.start()

    def _verified(self) -> None:
        self._worker = None
        self.test_button.setEnabled(True)

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet(ERROR_STYLE if error else "")
        self.message.setText(text)

    def done(self, result: int) -> None:
        if self._worker is not None:
            self._worker.wait(5_000)
        super().done(result)
