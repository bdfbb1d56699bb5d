"""The packaging scripts on small real inputs: licences and SBOM, GPU runtime split, .deb, .tar.gz.

The full bundle (PyInstaller build, self-test from outside the tree, installed .deb) is
checked by ``make package-check`` (tests/packaging/bundle_check.py).
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy
import pydicom
import pytest

from tests.packaging.helpers import PACKAGING_DIR, PROJECT_ROOT, load_build_script

build = load_build_script()
import bundle_contents  # noqa: E402 - importable once build.py put packaging/ on sys.path

MIME_NS = "{http://www.freedesktop.org/standards/shared-mime-info}"


# ---------------------------------------------------------------- licences and SBOM


def test_distributions_are_found_from_their_files_with_licence_texts():
    sources = [numpy.__file__, pydicom.__file__, str(Path(pydicom.__file__).parent / "misc.py"),
               "/nonexistent/file.py"]
    found = {d.name: d for d in bundle_contents.distributions_for(sources)}
    assert set(found) == {"numpy", "pydicom"}
    assert found["pydicom"].files == 2
    assert found["numpy"].version == numpy.__version__
    assert any("Copyright" in text for text in found["numpy"].license_texts.values())
    assert found["pydicom"].license  # declared licence from the metadata


def test_licences_and_sbom_name_every_component(tmp_path):
    dists = bundle_contents.distributions_for([numpy.__file__, pydicom.__file__])
    libraries = bundle_contents.system_libraries(["/usr/lib/x86_64-linux-gnu/libz.so.1",
                                                  numpy.__file__])
    assert [Path(lib.path).name for lib in libraries] == ["libz.so.1"]  # wheels are not system
    bundle_contents.write_licenses(tmp_path / "LICENSES.txt", "Test bundle", dists, libraries)
    text = (tmp_path / "LICENSES.txt").read_text(encoding="utf-8")
    for name in ("CPython", "numpy", "pydicom", "System library libz.so.1"):
        assert name in text
    if sys.platform.startswith("linux"):
        assert "Debian package zlib1g" in text and "Copyright" in text.split("libz.so.1")[1]

    bundle_contents.write_sbom(tmp_path / "sbom.json", "medviewer-test", "0.1.0", dists,
                               libraries)
    sbom = json.loads((tmp_path / "sbom.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.5"
    assert sbom["metadata"]["component"]["name"] == "medviewer-test"
    by_name = {c["name"]: c for c in sbom["components"]}
    assert by_name["numpy"]["purl"] == f"pkg:pypi/numpy@{numpy.__version__}"
    assert by_name["pydicom"]["version"] == pydicom.__version__
    assert "CPython" in by_name
    for component in sbom["components"]:
        for licence in component.get("licenses", []):
            assert "expression" in licence or licence["license"].get("name") or \
                licence["license"].get("id")


@pytest.mark.parametrize("text, spdx", [("MIT", True), ("BSD-3-Clause", True),
                                        ("Apache-2.0 AND MIT", True), ("LGPL", False),
                                        ("BSD License", False), ("unknown", False)])
def test_only_known_spdx_ids_are_written_as_expressions(text, spdx):
    assert bundle_contents._is_spdx_like(text) is spdx


# ---------------------------------------------------------------- the GPU runtime split


@pytest.mark.parametrize("destination, gpu", [
    ("nvidia/cu13/lib/libcublasLt.so.13", True),
    ("nvidia/cudnn/lib/libcudnn.so.9", True),
    ("onnxruntime/capi/libonnxruntime_providers_cuda.so", True),
    ("onnxruntime/capi/libonnxruntime_providers_shared.so", False),
    ("onnxruntime/capi/libonnxruntime.so.1.31.1", False),
    ("PySide6/Qt/lib/libQt6Core.so.6", False),
])
def test_gpu_runtime_files_are_recognised_by_their_place_in_the_bundle(destination, gpu):
    assert bundle_contents.is_gpu_runtime_file(destination) is gpu


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the split is Linux-only")
def test_gpu_runtime_holds_what_the_cuda_provider_loads_and_not_torchs_extras():
    names = {Path(relative).name for _, relative in build.gpu_runtime_files()}
    # Linked by the CUDA provider, preloaded by onnxruntime, or dlopened by cuDNN.
    for needed in ("libonnxruntime_providers_cuda.so", "libcublas.so.13", "libcublasLt.so.13",
                   "libcurand.so.10", "libcudart.so.13", "libnvrtc.so.13", "libcudnn.so.9",
                   "libcudnn_cnn.so.9", "libcudnn_ops.so.9", "libcudnn_graph.so.9",
                   "libcudnn_engines_precompiled.so.9"):
        assert needed in names
    for extra in ("libcufft.so.12", "libnccl.so.2", "libcusparseLt.so.0", "libcusolver.so.12",
                  "libcusparse.so.12", "libcupti.so.13", "libnvJitLink.so.13"):
        assert extra not in names
    provider = next(p for p, rel in build.gpu_runtime_files()
                    if rel.endswith("providers_cuda.so"))
    needed = subprocess.run(["readelf", "-d", str(provider)], capture_output=True, text=True,
                            check=True).stdout
    for line in needed.splitlines():
        if "(NEEDED)" in line:
            library = line.split("[")[1].rstrip("]")
            if library.startswith(("libcu", "libnv")) and library != "libcuda.so.1":
                assert library in names, f"the CUDA provider links {library}"


# ---------------------------------------------------------------- Linux desktop integration


def test_desktop_entry_and_mime_type_describe_dicom(tmp_path):
    text = build._fill(PACKAGING_DIR / "linux/medviewer.desktop.in",
                       {"EDITION_TITLE": "Viewer", "BIN": "/usr/bin/medviewer-viewer",
                        "ICON": "medviewer-viewer", "STUDIO_COMMENT": ""})
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read_string(text)
    desktop = entry["Desktop Entry"]
    assert desktop["Exec"] == "/usr/bin/medviewer-viewer %F"
    assert "application/dicom" in desktop["MimeType"].split(";")
    assert desktop["Type"] == "Application" and desktop["Terminal"] == "false"

    mime = ET.parse(PACKAGING_DIR / "linux/medviewer-mime.xml").getroot()
    dicom = mime.find(f"{MIME_NS}mime-type")
    assert dicom.get("type") == "application/dicom"
    assert "*.dcm" in [g.get("pattern") for g in dicom.findall(f"{MIME_NS}glob")]
    match = dicom.find(f"{MIME_NS}magic/{MIME_NS}match")
    offset, value = int(match.get("offset")), match.get("value").encode()
    sample = sorted((PROJECT_ROOT / "resources/sample_study").glob("*.dcm"))[0]
    assert sample.read_bytes()[offset:offset + len(value)] == value  # a real file matches


@pytest.fixture
def fake_bundle(tmp_path) -> Path:
    """A built folder's shape: an executable and _internal/ with a library of the system's."""
    folder = tmp_path / "dist" / "medviewer-viewer"
    (folder / "_internal" / "resources").mkdir(parents=True)
    executable = folder / "medviewer"
    executable.write_text("#!/bin/sh\necho medviewer-fake \"$@\"\n")
    executable.chmod(0o755)
    (folder / "_internal" / "resources" / "note.txt").write_text("bundled\n")
    return folder


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason=".deb is for Linux")
def test_deb_installs_under_opt_with_link_desktop_entry_icon_and_mime(fake_bundle, tmp_path):
    deb = build.make_deb("viewer", fake_bundle, tmp_path / "dist", tmp_path / "build")
    assert deb.name == f"medviewer-viewer_{build.app_version()}_amd64.deb"
    info = subprocess.run(["dpkg-deb", "--info", str(deb)], capture_output=True, text=True,
                          check=True).stdout
    assert "Package: medviewer-viewer" in info and "Architecture: amd64" in info
    assert "postinst" in info and "prerm" in info
    contents = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True,
                              text=True, check=True).stdout
    assert all(line.split()[1] == "root/root" for line in contents.splitlines())

    root = tmp_path / "root"
    subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    installed = root / "opt/medviewer-viewer/medviewer"
    assert os.access(installed, os.X_OK)
    assert (root / "opt/medviewer-viewer/_internal/resources/note.txt").read_text() == "bundled\n"
    link = root / "usr/bin/medviewer-viewer"
    assert link.is_symlink() and os.readlink(link) == "/opt/medviewer-viewer/medviewer"
    desktop = (root / "usr/share/applications/medviewer-viewer.desktop").read_text()
    assert "Icon=medviewer-viewer\n" in desktop
    assert (root / "usr/share/icons/hicolor/256x256/apps/medviewer-viewer.png").read_bytes()[:4] \
        == b"\x89PNG"
    assert (root / "usr/share/mime/packages/medviewer-viewer.xml").is_file()
    result = subprocess.run([str(installed), "--self-test"], capture_output=True, text=True)
    assert result.stdout == "medviewer-fake --self-test\n"

    control = subprocess.run(["dpkg-deb", "--field", str(deb), "Depends", "Installed-Size"],
                             capture_output=True, text=True, check=True).stdout
    assert "Depends: libc6" in control
    postinst = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(deb)], capture_output=True,
                              check=True).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(postinst)) as ctrl:
        script = ctrl.extractfile("./postinst").read().decode()
    assert ("update-alternatives --install /usr/bin/medviewer medviewer "
            "/opt/medviewer-viewer/medviewer 10") in script


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tar.gz is the Linux archive")
def test_tar_holds_the_folder_under_its_name(fake_bundle, tmp_path):
    archive = build.make_tar(fake_bundle, tmp_path / "out.tar.gz")
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert "medviewer-viewer/medviewer" in members
    assert members["medviewer-viewer/medviewer"].mode & 0o111
    assert members["medviewer-viewer/medviewer"].uid == 0
    assert "medviewer-viewer/_internal/resources/note.txt" in members


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ldd and dpkg are Linux tools")
def test_deb_dependencies_come_from_the_libraries_the_bundle_links(tmp_path):
    folder = tmp_path / "medviewer-viewer"
    (folder / "_internal").mkdir(parents=True)
    import shutil

    shutil.copyfile("/bin/ls", folder / "medviewer")  # a real ELF linking libc
    packages = build.system_dependencies(folder)
    assert "libc6" in packages


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ldd and dpkg are Linux tools")
def test_deb_depends_on_qts_xcb_libraries_even_where_the_build_machine_lacks_one(tmp_path):
    """A fresh build machine has no libxcb-icccm4: the .deb must still depend on it. Here the
    bundled xcb plugin needs a library no machine has, standing for such a missing one."""
    from medviewer.gui.qt_system_libraries import qt_plugins_dir

    folder = tmp_path / "medviewer-viewer"
    qt = folder / "_internal" / "PySide6" / "Qt"
    (qt / "plugins" / "platforms").mkdir(parents=True)
    plugin = (qt_plugins_dir() / "platforms" / "libqxcb.so").read_bytes()
    assert b"libxcb-icccm.so.4" in plugin
    (qt / "plugins" / "platforms" / "libqxcb.so").write_bytes(
        plugin.replace(b"libxcb-icccm.so.4", b"libxcb-iccxx.so.4"))
    (qt / "lib").symlink_to(qt_plugins_dir().parent / "lib")  # Qt's own libraries
    packages = build.system_dependencies(folder)
    assert "libxcb-iccxx4" in packages  # not on this machine: named from its SONAME
    assert {"libxcb-keysyms1", "libxkbcommon-x11-0", "libxcb-cursor0", "libc6"} <= set(packages)
    assert not any(p.startswith("libqt6") for p in packages)


def test_self_test_environment_has_no_venv_or_pythonpath(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT))
    monkeypatch.setenv("VIRTUAL_ENV", str(PROJECT_ROOT / ".venv"))
    env = build.clean_environment({"MEDVIEWER_MODELS_DIR": "/x"})
    assert "PYTHONPATH" not in env and "VIRTUAL_ENV" not in env
    assert ".venv" not in env["PATH"]
    assert env["MEDVIEWER_MODELS_DIR"] == "/x"


def test_one_spec_serves_both_editions():
    spec = (PACKAGING_DIR / "medviewer.spec").read_text()
    assert 'choices=("viewer", "studio")' in spec
    assert build.parse_args(["--edition", "all"]).edition == "all"
    with pytest.raises(SystemExit):
        build.parse_args(["--formats", "folder,msi"])
