"""Save screenshots of the PACS panel (docs/screenshots/pacs_*.png) to look at them.

Run under a real X server so fonts and styles are what users see:
    xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python -m tests.gui.make_pacs_screenshots docs/screenshots
Not a test: it asserts nothing. Starts a real Orthanc (tests/pacs/orthanc.py) on loopback in
a temporary folder, with a temporary MEDVIEWER_HOME.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from PySide6.QtWidgets import QApplication

from tests.gui.make_screenshots import pause, wait_until


def main(out_dir: str) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pacs-shots-"))
    os.environ["MEDVIEWER_HOME"] = str(work / "home")
    from medviewer.app.session import Session
    from medviewer.gui.pacs_panel import PacsPanel
    from medviewer.gui.pacs_server_dialog import ServerDialog
    from medviewer.gui.shell import StandaloneShell
    from medviewer.pacs import servers
    from medviewer.settings import Settings
    from tests.pacs.orthanc import ORTHANC_AE, PASSWORD, USER, Orthanc, free_port
    from tests.pacs.studies import make_study

    _app = QApplication.instance() or QApplication(sys.argv)
    orthanc = Orthanc(work / "orthanc").start()
    try:
        for n, (pid, name, date, modality, description, count) in enumerate([
                ("MRN-004211", "Garcia^Maria", "20240611", "CT", "CT chest with contrast", 12),
                ("MRN-004211", "Garcia^Maria", "20230302", "CR", "Chest PA and lateral", 2),
                ("MRN-004211", "Garcia^Maria", "20210915", "CR", "Chest PA", 1),
                ("MRN-007730", "Garner^Tom", "20240610", "MR", "MR knee left", 6),
                ("MRN-009152", "Gardner^Anne", "20240612", "DX", "Hand right", 2)]):
            study = make_study(work / f"s{n}", count, series=2 if count > 2 else 1,
                               patient_id=pid, patient_name=name, study_date=date,
                               modality=modality, accession=f"A{240000 + n}",
                               description=description)
            orthanc.upload(study.paths)
        big = make_study(work / "big", 150, series=3, patient_id="MRN-004211",
                         patient_name="Garcia^Maria", study_date="20240612", modality="CT",
                         accession="A250001", description="CT abdomen", size=512)
        orthanc.upload(big.paths)
        servers.put_server(servers.ServerConfig(
            "Radiology PACS", "dimse", ae_title=ORTHANC_AE, host="127.0.0.1",
            port=orthanc.dicom_port, timeout_s=10))
        servers.put_server(servers.ServerConfig(
            "Radiology DICOMweb", "dicomweb", url=orthanc.dicomweb_url, auth="basic",
            username=USER, timeout_s=10))
        servers.secrets.set("Radiology DICOMweb", PASSWORD, remember=False)
        servers.put_server(servers.ServerConfig(
            "Old archive", "dimse", ae_title="ARCHIVE", host="127.0.0.1", port=free_port(),
            timeout_s=5))

        shell = StandaloneShell()
        panel = PacsPanel(Session(Settings()), shell)
        shell.add_panel("pacs", "PACS", panel)
        shell.resize(760, 760)
        shell.show()
        panel.server_box.setCurrentText("Radiology PACS")
        panel.patient_name.setText("gar")
        panel.study_dates.setText("20210101-")
        panel.search()
        wait_until(lambda: panel._search_worker is None)
        first = panel.tree.topLevelItem(1).child(0)
        first.setExpanded(True)
        wait_until(lambda: first.childCount() > 0)
        panel.tree.setCurrentItem(first)
        pause(300)
        shell.grab().save(str(out / "pacs_search.png"))

        # Retrieve in progress: the big study, grabbed part-way.
        top = panel.tree.topLevelItem(0)
        big_item = next(top.child(i) for i in range(top.childCount())
                        if top.child(i).text(4) == "150")
        panel.tree.setCurrentItem(big_item)
        panel.retrieve_item(big_item)
        wait_until(lambda: len(panel.last_retrieved) >= 40)
        shell.grab().save(str(out / "pacs_retrieve.png"))
        panel.cancel()
        wait_until(lambda: panel._transfer_worker is None)
        pause(200)

        # A failure: the old archive is switched off.
        panel.server_box.setCurrentText("Old archive")
        panel.search()
        wait_until(lambda: panel._search_worker is None)
        pause(200)
        shell.grab().save(str(out / "pacs_failure.png"))

        dialog = ServerDialog(shell, select="Radiology DICOMweb")
        dialog.resize(760, 460)
        dialog.show()
        pause(300)
        dialog.grab().save(str(out / "pacs_servers.png"))
        dialog.close()
        shell.shut_down()
        shell.close()
    finally:
        orthanc.stop()
    print(f"Saved PACS screenshots in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
