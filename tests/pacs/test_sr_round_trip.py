"""An AI read and a reader's regions go to the PACS as SRs and come back equal: write, send,
find, retrieve, read back (DIMSE and DICOMweb)."""

from __future__ import annotations

import pydicom
import pytest

from medviewer.dicom import sr
from medviewer.jobs import run_to_end
from medviewer.pacs import operations as ops
from medviewer.pacs.query import StudyQuery
from medviewer.pacs.servers import secrets
from tests.pacs.conftest import dimse_config, web_config
from tests.pacs.orthanc import PASSWORD
from tests.pacs.studies import make_study


@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_sr_round_trip_through_the_pacs(orthanc, tmp_path, protocol):
    server = dimse_config(orthanc) if protocol == "dimse" else web_config(orthanc)
    secrets.set(server.name, PASSWORD, remember=False)
    study = make_study(tmp_path / "images", 1, patient_id=f"SR-TRIP-{protocol}")
    orthanc.upload(study.paths)
    model = sr.ModelIdentity("chest-cnn", "2.0", "f" * 64)
    ai = sr.write_ai_report(study.paths[0], [sr.Finding("pneumonia", 0.71875, 0.5, True)],
                            model, tmp_path / "out")
    labels = sr.write_label_report(study.paths[0], "carol", "chest", [],
                                   [sr.RegionMark("nodule", "ellipse", 8, 8, 20, 10)],
                                   tmp_path / "out")
    written = {p.name: sr.read_report(p) for p in (ai, labels)}

    sent = run_to_end(ops.send_job(server, [tmp_path / "out"]))
    assert sent.sent == 2

    (found,) = run_to_end(ops.find_studies_job(server, StudyQuery(patient_id=study.patient_id)))
    assert set(found.modalities) == {"CT", "SR"} and found.instance_count == 3
    series = run_to_end(ops.find_series_job(server, study.study_uid))
    sr_series = [s for s in series if s.modality == "SR"]
    assert len(sr_series) == 2 and all(s.instances == 1 for s in sr_series)

    back = []
    for row in sr_series:
        result = run_to_end(ops.retrieve_job(server, study.study_uid, row.series_uid,
                                             root=tmp_path / "back"))
        back.extend(result.paths)
    for path in back:
        values = sr.read_report(path)
        original = next(v for v in written.values()
                        if v.sop_instance_uid == values.sop_instance_uid)
        assert pydicom.dcmread(path).SOPInstanceUID == original.sop_instance_uid
        for attribute in ("study_uid", "series_uid", "observer", "algorithm",
                          "referenced_images", "findings", "regions"):
            assert getattr(values, attribute) == getattr(original, attribute), attribute
