"""PACS retrieve throughput, time to the first image, and query latency, against a local
Orthanc (tests/pacs/orthanc.py) on loopback.

Baselines in the same run, over the same study:
* C-GET: DCMTK's ``getscu`` writing the study to a folder;
* WADO-RS: the plain dicomweb-client loop (``iter_study`` and ``save_as`` per instance);
* C-FIND: DCMTK's ``findscu`` with the same keys (a process start included, which favours
  MedViewer: its figure is the in-process call).

Also the time from "Retrieve" in the PACS panel of the main window to the first image
painted (offscreen Qt), beside the same retrieve's first image on disk.

Target: MedViewer's throughput >= 0.8x each baseline's. Run: python -m tests.bench pacs
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path

from medviewer.jobs import run_to_end
from medviewer.pacs import operations as ops
from medviewer.pacs.query import StudyQuery
from medviewer.pacs.servers import ServerConfig
from tests.bench.event_loop import run_until
from tests.pacs.orthanc import ORTHANC_AE, PASSWORD, USER, Orthanc, missing_programs
from tests.pacs.studies import make_instance, make_study

INSTANCES = 60
SIZE = 512  # 512 x 512 x 16 bit: 0.5 MB an instance, 30 MB the study
REPEATS = 5
QUERY_STUDIES = int(os.environ.get("BENCH_PACS_STUDIES", "1000"))  # fewer for a quick look
QUERY_REPEATS = 5
# DCMTK at its fastest: Nagle's algorithm off, as MedViewer's associations have it.
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def _median_times(first, second) -> tuple[float, float]:
    """Median wall time of each, the runs interleaved: on a shared machine the load changes
    from second to second, and back-to-back blocks would hand it to one side."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(REPEATS):
        for action, kept in ((first, times[0]), (second, times[1])):
            started = time.perf_counter()
            action()
            kept.append(time.perf_counter() - started)
    return statistics.median(times[0]), statistics.median(times[1])


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def bench_retrieve(orthanc: Orthanc, work: Path, study_uid: str) -> None:
    dimse = ServerConfig("bench", "dimse", ae_title=ORTHANC_AE, host="127.0.0.1",
                         port=orthanc.dicom_port, timeout_s=30)
    web = ServerConfig("bench-web", "dicomweb", url=orthanc.dicomweb_url, auth="basic",
                       username=USER, timeout_s=30)
    megabytes = sum(p.stat().st_size for p in (work / "study").iterdir()) / 1e6

    def getscu() -> None:
        out = _fresh(work / "getscu")
        subprocess.run(["getscu", "-aet", "MEDVIEWER", "-aec", ORTHANC_AE, "-od", str(out),
                        "-S", "-k", "QueryRetrieveLevel=STUDY", "-k",
                        f"StudyInstanceUID={study_uid}", "127.0.0.1", str(orthanc.dicom_port)],
                       check=True, capture_output=True, env=DCMTK_ENV)
        assert len(list(out.iterdir())) == INSTANCES

    firsts: dict[str, list[float]] = {"C-GET": [], "WADO-RS": []}

    def ours(server: ServerConfig, label: str, secret: str | None = None):
        def run() -> None:
            out = _fresh(work / f"ours-{label}")
            started = time.perf_counter()

            def on_event(event) -> None:
                if isinstance(event, ops.InstanceArrived) and event.first:
                    firsts[label].append(time.perf_counter() - started)

            result = run_to_end(ops.retrieve_job(server, study_uid, root=out, secret=secret),
                                on_event)
            assert len(result.paths) == INSTANCES
        return run

    def dicomweb_loop() -> None:
        from dicomweb_client.api import DICOMwebClient
        from dicomweb_client.session_utils import create_session_from_user_pass

        out = _fresh(work / "dicomweb-loop")
        client = DICOMwebClient(orthanc.dicomweb_url,
                                session=create_session_from_user_pass(USER, PASSWORD))
        count = 0
        for dataset in client.iter_study(study_uid, media_types=(("application/dicom", "*"),)):
            dataset.save_as(out / f"{dataset.SOPInstanceUID}.dcm", enforce_file_format=True)
            count += 1
        assert count == INSTANCES

    rows = []
    for label, baseline_name, baseline, mine in (
            ("C-GET", "getscu", getscu, ours(dimse, "C-GET")),
            ("WADO-RS", "dicomweb-client loop", dicomweb_loop, ours(web, "WADO-RS", PASSWORD))):
        mine()  # warm-up (imports, first association)
        base_s, ours_s = _median_times(baseline, mine)
        ratio = base_s / ours_s
        rows.append((label, baseline_name, base_s, ours_s, ratio))
        print(f"{label}: {INSTANCES} instances, {megabytes:.0f} MB: MedViewer "
              f"{ours_s:.2f} s ({INSTANCES / ours_s:.0f} instances/s, {megabytes / ours_s:.0f} "
              f"MB/s) vs {baseline_name} {base_s:.2f} s: {ratio:.2f}x its throughput "
              f"(target >= 0.8x){'' if ratio >= 0.8 else '  BELOW TARGET'}")
    for label, values in firsts.items():
        print(f"Time from 'retrieve' to the first image on disk ({label}): median "
              f"{statistics.median(values) * 1000:.0f} ms over {len(values)} runs")


def bench_first_image_on_screen(orthanc: Orthanc, work: Path, study_uid: str) -> None:
    """From "Retrieve" in the PACS panel of the real main window to the first retrieved image
    painted in the viewer, over each protocol; each round in a fresh window with an empty
    retrieve cache (so nothing is on disk yet), against the same retrieve's first image on
    disk measured in the same round (the panel's InstanceArrived)."""
    from PySide6.QtWidgets import QApplication

    from medviewer.gui.app import configure_pyqtgraph, create_application
    from medviewer.gui.main_window import MainWindow
    from medviewer.pacs import servers
    from medviewer.paths import user_cache_dir

    os.environ["MEDVIEWER_HOME"] = str(work / "gui-home")
    create_application()
    configure_pyqtgraph()
    servers.put_server(ServerConfig("Bench PACS", "dimse", ae_title=ORTHANC_AE,
                                    host="127.0.0.1", port=orthanc.dicom_port, timeout_s=30))
    servers.put_server(ServerConfig("Bench DICOMweb", "dicomweb", url=orthanc.dicomweb_url,
                                    auth="basic", username=USER, timeout_s=30))
    servers.secrets.set("Bench DICOMweb", PASSWORD, remember=False)

    def one_round(server_name: str) -> tuple[float, float]:
        shutil.rmtree(user_cache_dir() / "pacs", ignore_errors=True)
        window = MainWindow()
        window.resize(1400, 900)
        window.show()
        panel = window.show_pacs_panel()
        panel.server_box.setCurrentText(server_name)
        panel.search()
        run_until(lambda: panel._search_worker is None and panel.tree.topLevelItemCount() > 0)
        study_item = panel.tree.topLevelItem(0).child(0)
        shown: list[float] = []
        window.image_view.image_shown.connect(
            lambda instance: shown.append(time.perf_counter())
            if instance is not None and "pacs" in instance.path.parts else None)
        started = time.perf_counter()
        panel.retrieve_item(study_item)
        run_until(lambda: bool(panel.last_retrieved))
        on_disk = time.perf_counter() - started
        run_until(lambda: bool(shown))
        QApplication.processEvents()  # the repaint that showing the image queued
        painted = time.perf_counter() - started
        run_until(lambda: panel._transfer_worker is None)
        window.close()
        window.deleteLater()
        QApplication.processEvents()
        return painted, on_disk

    print("Time from 'Retrieve' in the PACS panel to the first image painted in the main "
          "window (fresh window, empty cache; median of 5):")
    for label, name in (("C-GET", "Bench PACS"), ("WADO-RS", "Bench DICOMweb")):
        one_round(name)  # warm-up: imports, first association, first paint of a viewer
        rounds = [one_round(name) for _ in range(5)]
        screen = statistics.median(r[0] for r in rounds) * 1000
        disk = statistics.median(r[1] for r in rounds) * 1000
        print(f"  {label}: on screen {screen:.0f} ms; on disk (the panel told of it) "
              f"{disk:.0f} ms; the viewer's part {screen - disk:.0f} ms")
    servers.secrets.forget("Bench DICOMweb")


def bench_queries(orthanc: Orthanc, work: Path) -> None:
    folder = work / "many"
    started = time.perf_counter()
    for n in range(QUERY_STUDIES):
        study_uid = f"1.2.826.0.1.3680043.8.498.77.{n + 1}"
        path = make_instance(folder / f"{n}.dcm", patient_id=f"Q-{n:05d}",
                             patient_name=f"Query^Patient{n:05d}", study_uid=study_uid,
                             series_uid=study_uid + ".1", series_number=1, instance_number=1,
                             study_date=f"2023{1 + n % 12:02d}{1 + n % 28:02d}",
                             modality="CR" if n % 2 else "DX", accession=f"QA{n:05d}",
                             size=8, seed=n)
        orthanc.upload([path])
    total = orthanc.statistics()["CountStudies"]
    print(f"Query server: {total} studies (made and stored in "
          f"{time.perf_counter() - started:.1f} s)")
    dimse = ServerConfig("bench", "dimse", ae_title=ORTHANC_AE, host="127.0.0.1",
                         port=orthanc.dicom_port, timeout_s=30)
    web = ServerConfig("bench-web", "dicomweb", url=orthanc.dicomweb_url, auth="basic",
                       username=USER, timeout_s=30)
    one = StudyQuery(patient_id="Q-00421")
    month = StudyQuery(date_from=date(2023, 3, 1), date_to=date(2023, 3, 31))
    for name, query, keys in (
            ("one patient ID", one, ["PatientID=Q-00421"]),
            ("one month (about 1/12 of them)", month, ["StudyDate=20230301-20230331"])):
        for label, server, secret in (("C-FIND", dimse, None), ("QIDO-RS", web, PASSWORD)):
            run_to_end(ops.find_studies_job(server, query, secret))  # warm-up
            times, found = [], 0
            for _ in range(QUERY_REPEATS):
                began = time.perf_counter()
                found = len(run_to_end(ops.find_studies_job(server, query, secret)))
                times.append(time.perf_counter() - began)
            line = (f"{label} {name}: {found} matches, median "
                    f"{statistics.median(times) * 1000:.0f} ms")
            if label == "C-FIND":
                base = []
                for _ in range(QUERY_REPEATS):
                    began = time.perf_counter()
                    subprocess.run(["findscu", "-aet", "MEDVIEWER", "-aec", ORTHANC_AE, "-S",
                                    "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID",
                                    "-k", "PatientName", *[a for k in keys for a in ("-k", k)],
                                    "127.0.0.1", str(orthanc.dicom_port)],
                                   check=True, capture_output=True, env=DCMTK_ENV)
                    base.append(time.perf_counter() - began)
                line += (f" (findscu, process start included: "
                         f"{statistics.median(base) * 1000:.0f} ms)")
            print(line)


def main() -> None:
    missing = missing_programs()
    if missing or shutil.which("getscu") is None:
        print(f"skipped: {missing or 'getscu (Debian dcmtk) is missing'}")
        return
    work = Path(tempfile.mkdtemp(prefix="bench-pacs-"))
    orthanc = Orthanc(work / "orthanc").start()
    try:
        study = make_study(work / "study", INSTANCES, series=2, size=SIZE)
        orthanc.upload(study.paths)
        bench_retrieve(orthanc, work, study.study_uid)
        bench_first_image_on_screen(orthanc, work, study.study_uid)
        bench_queries(orthanc, work)
    finally:
        orthanc.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
