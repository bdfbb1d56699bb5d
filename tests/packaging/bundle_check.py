"""`make package-check`: build the Viewer edition and check it the way a user gets it.

Not collected by a plain `pytest` run (the name does not start with ``test_``): the
PyInstaller build takes a few minutes, so CI runs it as its own step after `make test`.
The bundle runs from a folder outside the source tree with the venv off PATH and no
PYTHONPATH, so a module the bundle lacks fails here and not on a hospital PC.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.packaging.helpers import PROJECT_ROOT, load_build_script
from tests.test_selftest import write_tiny_model


def canonical_name(name: str) -> str:
    """A distribution's name as PEP 503 compares them: runs of -_. are one hyphen."""
    return re.sub(r"[-_.]+", "-", name).lower()


build = load_build_script()
pytestmark = pytest.mark.slow

EDITION = "viewer"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The Viewer folder and .deb, built once into a temporary dist folder."""
    dist = tmp_path_factory.mktemp("dist")
    code = build.main(["--edition", EDITION, "--formats", "folder,deb", "--dist", str(dist)])
    assert code == 0
    folder = dist / f"medviewer-{EDITION}"
    debs = list(dist.glob(f"medviewer-{EDITION}_*_amd64.deb"))
    assert folder.is_dir() and len(debs) == 1
    return {"folder": folder, "deb": debs[0]}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    write_tiny_model(folder)
    return folder


def run_bundle(executable: Path, *args: str, models_dir: Path | None = None,
               cwd: Path) -> subprocess.CompletedProcess:
    extra = {"MEDVIEWER_MODELS_DIR": str(models_dir)} if models_dir else {}
    return subprocess.run([str(executable), *args], cwd=cwd, env=build.clean_environment(extra),
                          capture_output=True, text=True, timeout=300)


def test_self_test_passes_outside_the_source_tree(built, tiny_models, tmp_path):
    result = run_bundle(built["folder"] / "medviewer", "--self-test", models_dir=tiny_models,
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"MedViewer self-test passed: {EDITION} edition ")
    assert "model tiny-cam@1.0 on CPUExecutionProvider" in result.stdout
    assert " training " not in result.stdout  # no torch in the Viewer
    assert "; GPU runtime not installed (medviewer-viewer-gpu adds NVIDIA GPU support);" \
        in result.stdout
    assert result.stderr == ""


def test_self_test_with_the_shipped_models(built, tmp_path):
    """With the model in models/ it passes; without one it says so in one line."""
    result = run_bundle(built["folder"] / "medviewer", "--self-test", cwd=tmp_path)
    shipped = sorted((PROJECT_ROOT / "models").glob("**/*.onnx"))
    if shipped:
        assert result.returncode == 0, result.stderr
        assert "self-test passed" in result.stdout
    else:
        models = built["folder"] / "_internal" / "models"
        assert result.returncode == 1
        assert result.stderr == ("MedViewer self-test failed at model load: no built-in model "
                                 f"is installed in {models}\n")


def test_viewer_leaves_out_torch_the_gpu_runtime_and_unused_qt(built):
    internal = built["folder"] / "_internal"
    names = {p.name for p in internal.rglob("*")}
    for absent in ("torch", "torchvision", "triton", "nvidia", "libonnxruntime_providers_cuda.so",
                   "libQt6Qml.so.6", "libQt6Quick.so.6", "libQt6WebEngineCore.so.6",
                   "libQt6Pdf.so.6", "libqgtk3.so", "pytest"):
        assert absent not in names, f"{absent} is in the Viewer bundle"
    for present in ("libonnxruntime_providers_shared.so", "libqxcb.so", "libqoffscreen.so",
                    "libqwayland.so", "sample_study", "ATTRIBUTION.md", "style.qss",
                    "medviewer-build.json"):
        assert present in names, f"{present} is missing from the Viewer bundle"
    info = json.loads((internal / "medviewer-build.json").read_text())
    assert info["edition"] == EDITION and info["gpu_runtime"] == "separate"


@pytest.mark.parametrize("syntax", ["J2KR", "JPLL", "JLSL", "RLE"])
def test_compressed_dicom_decodes_in_the_bundle(built, shared_data, tmp_path, syntax):
    """Decoder plugins found through entry points: the sample study is not compressed."""
    source = shared_data / "dicom" / "wg04" / syntax / f"CT1_{syntax}"
    out = tmp_path / "out.png"
    result = run_bundle(built["folder"] / "medviewer", "render", str(source), "-o", str(out),
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_licences_and_sbom_cover_every_bundled_distribution(built):
    internal = built["folder"] / "_internal"
    sbom = json.loads((internal / "sbom.cdx.json").read_text())
    components = {(canonical_name(c["name"]), c["version"]) for c in sbom["components"]}
    licences = (internal / "THIRD-PARTY-LICENSES.txt").read_text(encoding="utf-8")
    dist_infos = sorted(internal.glob("*.dist-info"))
    assert len(dist_infos) > 10
    for dist_info in dist_infos:
        name, version = dist_info.name[:-len(".dist-info")].rsplit("-", 1)
        key = (canonical_name(name), version)  # jaraco_context-*.dist-info is jaraco.context
        assert key in components, f"{dist_info.name} is bundled but not in the SBOM"
    for name in ("onnxruntime-gpu", "PySide6_Essentials", "pydicom", "numpy", "CPython"):
        assert f"\n{name} " in licences
    assert (internal / "LICENSE-MedViewer.txt").is_file()


def test_installed_deb_runs(built, tiny_models, tmp_path):
    root = tmp_path / "root"
    subprocess.run(["dpkg", "-x", str(built["deb"]), str(root)], check=True)
    installed = root / "opt" / f"medviewer-{EDITION}"
    assert os.readlink(root / "usr/bin" / f"medviewer-{EDITION}") == \
        f"/opt/medviewer-{EDITION}/medviewer"
    result = run_bundle(installed / "medviewer", "--self-test", models_dir=tiny_models,
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    fields = subprocess.run(["dpkg-deb", "--field", str(built["deb"]), "Depends"],
                            capture_output=True, text=True, check=True).stdout
    assert "libc6" in fields
    contents = subprocess.run(["dpkg-deb", "--contents", str(built["deb"])],
                              capture_output=True, text=True, check=True).stdout
    for path in (f"./usr/share/applications/medviewer-{EDITION}.desktop",
                 f"./usr/share/mime/packages/medviewer-{EDITION}.xml",
                 f"./usr/share/icons/hicolor/256x256/apps/medviewer-{EDITION}.png",
                 f"./opt/medviewer-{EDITION}/_internal/THIRD-PARTY-LICENSES.txt"):
        assert path in contents


def test_training_commands_explain_the_studio_edition(built, tmp_path):
    result = run_bundle(built["folder"] / "medviewer", "train", "--data", str(tmp_path),
                        "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("medviewer: Training needs the MedViewer Studio edition")
    assert result.stderr.count("\n") == 1  # one sentence, no traceback
