"""The PACS panel alone (StandaloneShell, a real Session) against the test Orthanc: search
results as patient > study > series, retrieve with progress opening the first image as soon
as it arrives, cancel, priors, send, and failures as one sentence."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from medviewer.app.session import Session
from medviewer.gui.pacs_panel import PacsPanel
from medviewer.gui.shell import StandaloneShell
from medviewer.pacs import servers
from medviewer.pacs.cache import RetrieveCache
from medviewer.settings import Settings
from tests.pacs.conftest import dimse_config, orthanc, own_orthanc, web_config  # noqa: F401
from tests.pacs.orthanc import PASSWORD, free_port
from tests.pacs.studies import make_study


@pytest.fixture(scope="session")
def studies(orthanc, tmp_path_factory):  # noqa: F811
    folder = tmp_path_factory.mktemp("panel-studies")
    old = make_study(folder / "old", 3, patient_id="GUI-1", patient_name="Panel^Paula",
                     study_date="20190105", description="Chest 2019")
    new = make_study(folder / "new", 30, series=2, patient_id="GUI-1",
                     patient_name="Panel^Paula", study_date="20240210", size=256,
                     description="Chest CT")
    other = make_study(folder / "other", 2, patient_id="GUI-2", patient_name="Other^Olaf",
                       study_date="20240211", modality="MR", description="Knee")
    for study in (old, new, other):
        orthanc.upload(study.paths)
    return old, new, other


@pytest.fixture
def panel(qtbot, orthanc, tmp_path):  # noqa: F811
    servers.put_server(dimse_config(orthanc, name="Ward PACS"))
    servers.put_server(web_config(orthanc, name="Ward DICOMweb"))
    servers.secrets.set("Ward DICOMweb", PASSWORD, remember=False)
    shell = StandaloneShell()
    session = Session(Settings())
    opened: list[list[Path]] = []
    session.events.open_requested.connect(opened.append)
    widget = PacsPanel(session, shell, cache=RetrieveCache(tmp_path / "cache"))
    widget.server_box.setCurrentText("Ward PACS")
    shell.add_panel("pacs", "PACS", widget)
    shell.resize(900, 700)
    shell.show()
    qtbot.waitExposed(shell)
    widget.opened = opened
    yield widget
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.is_busy(), timeout=15_000)
    shell.shut_down()
    shell.close()
    shell.deleteLater()
    servers.secrets.forget("Ward DICOMweb")


def _search(qtbot, panel, **fields):
    for name, value in fields.items():
        widget = getattr(panel, name)
        if hasattr(widget, "setEditText"):
            widget.setEditText(value)
        else:
            widget.setText(value)
    panel.search_button.click()
    qtbot.waitUntil(lambda: panel.search_button.isEnabled() and panel._search_worker is None,
                    timeout=15_000)


def _tree(panel):
    rows = []
    for i in range(panel.tree.topLevelItemCount()):
        top = panel.tree.topLevelItem(i)
        rows.append((top.text(0), [(top.child(j).text(1), top.child(j).text(3),
                                    top.child(j).text(4)) for j in range(top.childCount())]))
    return rows


@pytest.mark.parametrize("server_name", ["Ward PACS", "Ward DICOMweb"])
def test_search_shows_patients_studies_and_series_with_counts(qtbot, panel, studies,
                                                              server_name):
    panel.server_box.setCurrentText(server_name)
    _search(qtbot, panel, patient_name="panel")
    assert _tree(panel) == [("Panel, Paula (2 studies)", [("2024-02-10", "2", "30"),
                                                          ("2019-01-05", "1", "3")])]
    assert panel.message.text() == "2 studies found."
    study_item = panel.tree.topLevelItem(0).child(0)
    study_item.setExpanded(True)
    qtbot.waitUntil(lambda: study_item.childCount() == 2, timeout=15_000)
    assert [(study_item.child(i).text(3), study_item.child(i).text(4))
            for i in range(2)] == [("1", "15"), ("2", "15")]

    _search(qtbot, panel, patient_name="", study_dates="20240211-20240211", modality="MR")
    assert _tree(panel) == [("Other, Olaf (1 study)", [("2024-02-11", "1", "2")])]


def test_double_click_retrieves_and_opens_the_first_image_at_once(qtbot, panel, studies):
    _old, new, _other = studies
    _search(qtbot, panel, patient_id="GUI-1", study_dates="20240101-")
    study_item = panel.tree.topLevelItem(0).child(0)
    rect = panel.tree.visualItemRect(study_item)
    # A press first: Qt's item views act on a double-click only on the item pressed.
    qtbot.mouseClick(panel.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(panel.tree.viewport(), Qt.MouseButton.LeftButton,
                      pos=rect.center())
    qtbot.waitUntil(lambda: panel._transfer_worker is None and bool(panel.last_retrieved),
                    timeout=30_000)
    first, *rest = panel.opened
    assert len(first) == 1 and first[0] == panel.last_retrieved[0]  # the first image alone
    assert rest == [[panel.cache().study_folder(new.study_uid)]]  # then the whole study
    assert len(panel.last_retrieved) == 30
    assert panel.message.text().startswith("Retrieved 30 instances in ")


def test_cancel_mid_retrieve_keeps_what_arrived(qtbot, panel, studies):
    _search(qtbot, panel, patient_id="GUI-1", study_dates="20240101-")
    panel.tree.setCurrentItem(panel.tree.topLevelItem(0).child(0))
    panel.retrieve_button.click()
    qtbot.waitUntil(lambda: len(panel.last_retrieved) >= 1, timeout=15_000)
    assert panel.cancel_button.isVisible() and panel.progress.isVisible()
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: panel._transfer_worker is None, timeout=15_000)
    kept = len(panel.last_retrieved)
    assert 1 <= kept < 30
    assert panel.message.text() in (f"Cancelled; {kept} instances that arrived are kept.",
                                    "Cancelled; 1 instance that arrived is kept.")
    assert all(p.is_file() for p in panel.last_retrieved)


def test_priors_lists_the_patients_other_studies(qtbot, panel, studies):
    _search(qtbot, panel, patient_id="GUI-1", study_dates="20240101-")
    panel.tree.setCurrentItem(panel.tree.topLevelItem(0).child(0))
    panel.priors_button.click()
    qtbot.waitUntil(lambda: panel._search_worker is None and
                    panel.message.text().endswith("of this patient."), timeout=15_000)
    assert _tree(panel) == [("Panel, Paula (2 studies)", [("2024-02-10", "2", "30"),
                                                          ("2019-01-05", "1", "3")])]
    assert panel.message.text() == "1 other study of this patient."


def test_send_files_stores_them(qtbot, panel, orthanc, tmp_path):  # noqa: F811
    made = make_study(tmp_path / "send", 3, patient_id="GUI-SEND")
    panel.send_files(made.paths)
    qtbot.waitUntil(lambda: panel._transfer_worker is None, timeout=15_000)
    assert panel.message.text() == "Sent 3 files to Ward PACS."
    found = orthanc.rest("POST", "/tools/find",
                         b'{"Level": "Instance", "Query": {"PatientID": "GUI-SEND"}}')
    assert len(found) == 3


def test_a_server_that_is_down_is_one_sentence(qtbot, panel):
    servers.put_server(servers.ServerConfig("Down PACS", "dimse", ae_title="X",
                                            host="127.0.0.1", port=free_port()))
    panel.reload_servers("Down PACS")
    _search(qtbot, panel, patient_id="ANY")
    text = panel.message.text()
    assert text.startswith("The server 'Down PACS' refused the connection at 127.0.0.1:")
    assert panel.shell.errors == [text]


def test_server_dialog_saves_verifies_and_keeps_secrets_out_of_the_file(
        qtbot, orthanc):  # noqa: F811
    from medviewer.gui.pacs_server_dialog import ServerDialog

    dialog = ServerDialog()
    qtbot.addWidget(dialog)
    dialog.name.setText("Night DICOMweb")
    dialog.kind.setCurrentIndex(1)
    dialog.url.setText(orthanc.dicomweb_url)
    dialog.auth.setCurrentIndex(1)  # user name and password
    dialog.username.setText("alice")
    dialog.secret.setText(PASSWORD)
    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog._worker is None and "answered in" in dialog.message.text(),
                    timeout=15_000)
    assert dialog.message.text().startswith("Night DICOMweb answered in ")
    assert PASSWORD not in servers.config_path().read_text()
    assert servers.load_config().find("Night DICOMweb").username == "alice"

    dialog.port.setValue(1)  # a PACS whose settings are wrong: one sentence, nothing saved
    dialog.kind.setCurrentIndex(0)
    dialog.ae_title.setText("")
    assert dialog.save() is None
    assert dialog.message.text() == "The AE title '' of 'Night DICOMweb' must be 1 to 16 " \
                                    "printable characters."
    servers.secrets.forget("Night DICOMweb")
