"""Build MedViewer's installers: `make package` runs this.

    python packaging/build.py [--edition viewer|studio|all] [--formats folder,tar,deb]
                              [--gpu-runtime] [--self-test] [--dist DIR]

One PyInstaller spec (packaging/medviewer.spec) builds either edition as a self-contained
folder ``dist/medviewer-<edition>/``. On Linux that folder is also packed as a .tar.gz and
a .deb (installs under /opt/medviewer-<edition>, with a /usr/bin link, a desktop entry, an
icon and the application/dicom MIME type). ``--gpu-runtime`` also packs the Viewer's
optional GPU runtime (NVIDIA CUDA/cuDNN libraries and onnxruntime's CUDA provider) as its
own .tar.gz and .deb. On Windows and macOS the same script makes the folder / .app; the
GitHub workflow turns those into an Inno Setup installer and a .dmg.

Every step prints how long it took; ``--self-test`` runs each built folder's
``--self-test`` from outside the source tree with a clean environment.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

PACKAGING_DIR = Path(__file__).resolve().parent
ROOT = PACKAGING_DIR.parent
sys.path.insert(0, str(PACKAGING_DIR))

import bundle_contents  # noqa: E402

EDITIONS = ("viewer", "studio")
FORMATS = ("folder", "tar", "deb")
SUMMARIES = {
    "viewer": "DICOM and X-ray viewer with AI reads, saliency and labeling",
    "studio": "DICOM and X-ray viewer with AI reads, labeling and local model training",
}
DESCRIPTIONS = {
    "viewer": ("Opens DICOM and X-ray studies, runs ONNX classifiers (on an NVIDIA GPU with the "
               "medviewer-viewer-gpu package, otherwise on the CPU), shows saliency overlays "
               "and records labels. Self-contained: nothing is downloaded after installation. "
               "Training models needs the Studio edition."),
    "studio": ("Everything in the Viewer edition plus the training wizard: retrain and export "
               "classifiers locally with PyTorch (CUDA included). Self-contained: nothing is "
               "downloaded after installation."),
}
ALTERNATIVE_PRIORITY = {"viewer": 10, "studio": 20}
GPU_PACKAGE = "medviewer-viewer-gpu"
# gzip: every dpkg reads it and it packs the Viewer in well under a minute; xz saves about
# 30% but took 8+ minutes here (docs/performance.md). MEDVIEWER_DEB_COMPRESSION=xz for releases.
DEB_COMPRESSION = os.environ.get("MEDVIEWER_DEB_COMPRESSION", "gzip")


def log(message: str) -> None:
    print(f"[package] {message}", flush=True)


@dataclass
class Timer:
    name: str
    started: float = 0.0

    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started
        log(f"{self.name}: {self.seconds:.1f} s")


def app_version() -> str:
    text = (ROOT / "medviewer" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    if not match:
        raise SystemExit("medviewer/__init__.py has no __version__")
    return match.group(1)


def platform_tag() -> str:
    machine = platform.machine().lower().replace("amd64", "x86_64")
    return f"{sys.platform.replace('win32', 'windows')}-{machine}"


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB"


# ---------------------------------------------------------------- build tools


def ensure_build_tools() -> None:
    """PyInstaller at the pinned version, installed into this venv if missing."""
    wanted = dict(line.split("==") for line in
                  (PACKAGING_DIR / "requirements.txt").read_text().splitlines()
                  if "==" in line and not line.startswith("#"))
    from importlib import metadata

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return ""

    if all(installed(name) == version for name, version in wanted.items()):
        return
    log("installing the build tools from packaging/requirements.txt")
    subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q",
                    "-r", str(PACKAGING_DIR / "requirements.txt")], check=True)


def check_edition_installable(edition: str) -> None:
    import importlib.util

    if edition == "studio" and importlib.util.find_spec("torch") is None:
        raise SystemExit("The Studio edition bundles torch: install it first "
                         "(pip install -e '.[studio]').")


# ---------------------------------------------------------------- PyInstaller


def git_commit() -> str:
    try:
        result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return result.stdout.strip()


def write_build_info(edition: str, work: Path) -> Path:
    info = {
        "edition": edition,
        "version": app_version(),
        "commit": git_commit(),
        "built": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "platform": platform_tag(),
        "python": platform.python_version(),
        # The Linux Viewer's GPU libraries are a separate component (see docs/installing.md).
        "gpu_runtime": ("separate" if edition == "viewer" and sys.platform.startswith("linux")
                        else "included"),
    }
    path = work / "medviewer-build.json"
    path.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return path


def run_pyinstaller(edition: str, dist: Path, build: Path) -> Path:
    work = build / edition
    work.mkdir(parents=True, exist_ok=True)
    build_info = write_build_info(edition, work)
    command = [
        sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
        "--distpath", str(dist), "--workpath", str(work / "pyinstaller"),
        str(PACKAGING_DIR / "medviewer.spec"), "--",
        "--edition", edition, "--build-info", str(build_info),
        "--notices-dir", str(work / "notices"),
    ]
    # The venv's tools (and nothing of the caller's PYTHONPATH) take part in the analysis.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with Timer(f"{edition}: PyInstaller"):
        subprocess.run(command, check=True, cwd=ROOT, env=env)
    folder = dist / f"medviewer-{edition}"
    if sys.platform == "darwin":
        return dist / f"MedViewer {edition.title()}.app"
    return folder


# ---------------------------------------------------------------- Linux archives


def make_tar(folder: Path, archive: Path, top: str | None = None) -> Path:
    """A .tar.gz of ``folder`` (its entries under ``top``, default the folder's name)."""
    top = top or folder.name
    archive.unlink(missing_ok=True)
    with Timer(f"tar.gz {archive.name}"):
        subprocess.run(["tar", "--owner=0", "--group=0", "--numeric-owner", "-czf", str(archive),
                        "-C", str(folder.parent), f"--transform=s,^{re.escape(folder.name)},{top},",
                        folder.name], check=True)
    return archive


def _elf_files(folder: Path) -> list[Path]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as handle:
                if handle.read(4) == b"\x7fELF":
                    found.append(path)
    return found


def system_dependencies(folder: Path) -> list[str]:
    """Debian packages providing the libraries the bundle links but does not carry.

    ``ldd`` each bundled ELF file with the bundle's own folder first on the search path;
    whatever still resolves outside the bundle is a system library whose package the .deb
    must depend on (libc6, libGL, X11/xcb, fontconfig...). A library Qt needs that this build
    machine lacks (a fresh machine has no libxcb-icccm4, say) is declared by its package name
    all the same; other libraries not found here (the NVIDIA driver's libcuda) are optional
    at run time.
    """
    from medviewer.gui.qt_system_libraries import debian_package

    internal = folder / "_internal"
    env = {**os.environ, "LD_LIBRARY_PATH": str(internal)}
    outside: set[str] = set()
    qt_missing: set[str] = set()
    for path in _elf_files(folder):
        result = subprocess.run(["ldd", str(path)], capture_output=True, text=True, env=env,
                                 check=False)
        is_qt = "PySide6/Qt/" in path.as_posix()
        for line in result.stdout.splitlines():
            match = re.search(r"=>\s+(/\S+)", line)
            if match and not Path(match.group(1)).resolve().is_relative_to(folder.resolve()):
                outside.add(match.group(1))
            elif is_qt and line.strip().endswith("=> not found"):
                qt_missing.add(line.split()[0])
    missing_packages = {debian_package(name) for name in qt_missing}
    return sorted(_owning_packages(outside) | missing_packages)


def _owning_packages(paths: set[str]) -> set[str]:
    """The installed packages that own these files, as ``dpkg -S`` knows them.

    With merged /usr, ldd says /lib/... where dpkg may have recorded /usr/lib/... (or the
    reverse, or a symlink's target): every spelling is asked for, in one call.
    """
    if not paths:
        return set()
    spellings: set[str] = set()
    for path in paths:
        for name in {path, os.path.realpath(path)}:
            spellings.add(name)
            if name.startswith("/usr/lib/"):
                spellings.add(name[len("/usr"):])
            elif name.startswith("/lib/"):
                spellings.add("/usr" + name)
    result = subprocess.run(["dpkg", "-S", *sorted(spellings)], capture_output=True,
                            text=True, check=False)
    return {line.split(":")[0].strip() for line in result.stdout.splitlines() if ": " in line}


def _fill(template: Path, values: dict[str, str]) -> str:
    text = template.read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    leftover = re.findall(r"@[A-Z_]+@", text)
    if leftover:
        raise SystemExit(f"{template.name}: no value for {', '.join(leftover)}")
    return text


def _description(text: str) -> str:
    """A Debian long description: every line indented by one space."""
    import textwrap

    return "\n".join(" " + line for line in textwrap.wrap(text, 76))


def _copy_tree(source: Path, target: Path) -> None:
    """Hard links where possible (fast, no extra disk), else a copy."""
    try:
        subprocess.run(["cp", "-al", str(source), str(target)], check=True,
                       stderr=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(source, target, symlinks=True)


def _normalise_permissions(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(0o755)
        else:
            executable = os.access(path, os.X_OK) or path.suffix == ".so" or ".so." in path.name
            path.chmod(0o755 if executable else 0o644)


def _dpkg_deb(staging: Path, deb: Path) -> Path:
    deb.unlink(missing_ok=True)
    with Timer(f"dpkg-deb {deb.name}"):
        subprocess.run(["dpkg-deb", "--root-owner-group", f"-Z{DEB_COMPRESSION}", "-z6", "--build",
                        str(staging), str(deb)], check=True, stdout=subprocess.DEVNULL)
    return deb


def make_deb(edition: str, folder: Path, dist: Path, build: Path) -> Path:
    """The .deb for an edition, staged with hard links to the built folder."""
    version = app_version()
    package = f"medviewer-{edition}"
    install_dir = f"/opt/{package}"
    staging = build / "deb" / package
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "opt").mkdir(parents=True)
    _copy_tree(folder, staging / "opt" / package)

    (staging / "usr" / "bin").mkdir(parents=True)
    (staging / "usr" / "bin" / package).symlink_to(f"{install_dir}/medviewer")

    icon_name = package
    icon_dir = staging / "usr/share/icons/hicolor/256x256/apps"
    icon_dir.mkdir(parents=True)
    shutil.copyfile(ROOT / "resources/icons/medviewer.png", icon_dir / f"{icon_name}.png")

    applications = staging / "usr/share/applications"
    applications.mkdir(parents=True)
    (applications / f"{package}.desktop").write_text(_fill(
        PACKAGING_DIR / "linux/medviewer.desktop.in",
        {"EDITION_TITLE": edition.title(), "BIN": f"/usr/bin/{package}", "ICON": icon_name,
         "STUDIO_COMMENT": " and train models" if edition == "studio" else ""}),
        encoding="utf-8")

    mime = staging / "usr/share/mime/packages"
    mime.mkdir(parents=True)
    shutil.copyfile(PACKAGING_DIR / "linux/medviewer-mime.xml", mime / f"{package}.xml")

    docs = staging / "usr/share/doc" / package
    docs.mkdir(parents=True)
    shutil.copyfile(PACKAGING_DIR / "LICENSE-MedViewer.txt", docs / "copyright")

    with Timer(f"{edition}: dependencies (ldd)"):
        depends = system_dependencies(folder)
    debian = staging / "DEBIAN"
    debian.mkdir()
    values = {"PACKAGE": package, "VERSION": version, "INSTALL_DIR": install_dir,
              "INSTALLED_SIZE": str(folder_size(staging) // 1024 + 1),
              "DEPENDS": ", ".join(depends) or "libc6",
              "SUMMARY": f"MedViewer {edition.title()}: {SUMMARIES[edition]}",
              "DESCRIPTION": _description(DESCRIPTIONS[edition]),
              "PRIORITY": str(ALTERNATIVE_PRIORITY[edition])}
    (debian / "control").write_text(_fill(PACKAGING_DIR / "linux/control.in", values),
                                    encoding="utf-8")
    for script in ("postinst", "prerm"):
        (debian / script).write_text(_fill(PACKAGING_DIR / f"linux/{script}.in", values),
                                     encoding="utf-8")
    _normalise_permissions(staging)
    for script in ("postinst", "prerm"):
        (debian / script).chmod(0o755)
    return _dpkg_deb(staging, dist / f"{package}_{version}_amd64.deb")


# ---------------------------------------------------------------- the optional GPU runtime


def gpu_runtime_files() -> list[tuple[Path, str]]:
    """(installed file, path inside the bundle's _internal/) of the Viewer's GPU runtime."""
    import onnxruntime

    site = Path(onnxruntime.__file__).resolve().parent.parent
    files: list[tuple[Path, str]] = []
    for relative in bundle_contents.ORT_GPU_PROVIDER_LIBS:
        if (site / relative).is_file():
            files.append((site / relative, relative))
    for pattern in bundle_contents.CUDA_RUNTIME_PATTERNS:
        for path in sorted(site.glob(pattern)):
            files.append((path, str(path.relative_to(site))))
    names = {Path(rel).name for _, rel in files}
    required = ("libonnxruntime_providers_cuda.so", "libcublasLt.so.13", "libcudnn.so.9")
    missing = [name for name in required if name not in names]
    if missing:
        raise SystemExit(f"The GPU runtime cannot be packed: {', '.join(missing)} not installed "
                         "(pip install onnxruntime-gpu and the nvidia-* wheels, e.g. with torch).")
    return files


def make_gpu_runtime(dist: Path, build: Path, formats: set[str]) -> list[Path]:
    """``medviewer-viewer-gpu``: files that drop into an installed Viewer's _internal/."""
    version = app_version()
    staging = build / "gpu-runtime"
    shutil.rmtree(staging, ignore_errors=True)
    internal = staging / "medviewer-viewer" / "_internal"
    files = gpu_runtime_files()
    with Timer("gpu-runtime: copy"):
        for source, relative in files:
            target = internal / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
    from importlib import metadata

    distributions = [bundle_contents.describe(metadata.distribution(name))
                     for name in bundle_contents.CUDA_RUNTIME_DISTRIBUTIONS
                     if _has_distribution(name)]
    bundle_contents.write_licenses(internal / "GPU-RUNTIME-LICENSES.txt",
                                   "MedViewer Viewer GPU runtime: third-party licences",
                                   distributions)
    bundle_contents.write_sbom(internal / "sbom-gpu-runtime.cdx.json", GPU_PACKAGE, version,
                               distributions)
    outputs = []
    if "tar" in formats:
        outputs.append(make_tar(staging / "medviewer-viewer",
                                dist / f"{GPU_PACKAGE}-{version}-{platform_tag()}.tar.gz"))
    if "deb" in formats:
        root = build / "deb" / GPU_PACKAGE
        shutil.rmtree(root, ignore_errors=True)
        (root / "opt").mkdir(parents=True)
        _copy_tree(staging / "medviewer-viewer", root / "opt" / "medviewer-viewer")
        debian = root / "DEBIAN"
        debian.mkdir()
        control = (f"Package: {GPU_PACKAGE}\nVersion: {version}\nArchitecture: amd64\n"
                   "Maintainer: MedViewer maintainers <medviewer@example.org>\n"
                   f"Installed-Size: {folder_size(root) // 1024 + 1}\n"
                   f"Depends: medviewer-viewer (= {version})\nSection: science\n"
                   "Priority: optional\n"
                   "Description: MedViewer Viewer: GPU inference runtime (CUDA 13, cuDNN 9)\n"
                   + _description("NVIDIA CUDA runtime, cuBLAS, cuRAND, NVRTC and cuDNN "
                                  "libraries with onnxruntime's CUDA execution provider, "
                                  "installed into /opt/medviewer-viewer so the Viewer runs "
                                  "models on an NVIDIA GPU (driver for CUDA 13 needed). "
                                  "Without it the Viewer runs models on the CPU.") + "\n")
        (debian / "control").write_text(control, encoding="utf-8")
        _normalise_permissions(root)
        outputs.append(_dpkg_deb(root, dist / f"{GPU_PACKAGE}_{version}_amd64.deb"))
    return outputs


def _has_distribution(name: str) -> bool:
    from importlib import metadata

    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


# ---------------------------------------------------------------- checking a bundle


def clean_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """What a user's shell might have: no venv on PATH, no PYTHONPATH, no Python variables."""
    keep = ("HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "LOGNAME", "DISPLAY", "WAYLAND_DISPLAY",
            "XDG_RUNTIME_DIR", "SYSTEMROOT", "TEMP", "TMP", "USERPROFILE", "APPDATA",
            "LOCALAPPDATA")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PATH"] = os.pathsep.join(p for p in ("/usr/local/bin", "/usr/bin", "/bin")
                                  if Path(p).is_dir()) if os.name != "nt" else \
        os.environ.get("SYSTEMROOT", r"C:\Windows") + r"\system32"
    env.update(extra or {})
    return env


def bundle_executable(folder: Path) -> Path:
    if sys.platform == "win32":
        return folder / "medviewer-cli.exe"
    if folder.suffix == ".app":
        return folder / "Contents" / "MacOS" / "medviewer"
    return folder / "medviewer"


def run_bundle_self_test(folder: Path, models_dir: Path | None = None) -> int:
    executable = bundle_executable(folder)
    extra = {"MEDVIEWER_MODELS_DIR": str(models_dir)} if models_dir else {}
    with tempfile.TemporaryDirectory(prefix="medviewer-selftest-cwd-") as cwd:
        with Timer(f"self-test of {folder.name}"):
            result = subprocess.run([str(executable), "--self-test"], cwd=cwd,
                                    env=clean_environment(extra), check=False)
    return result.returncode


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edition", choices=(*EDITIONS, "all"), default="viewer",
                        help="which edition to build (default viewer)")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help="comma-separated: folder, tar, deb (Linux; default all)")
    parser.add_argument("--gpu-runtime", action="store_true",
                        help="also pack the Viewer's optional GPU runtime (Linux, ~2 GB)")
    parser.add_argument("--self-test", action="store_true",
                        help="run each built folder's --self-test from outside the source tree")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder")
    parser.add_argument("--build", type=Path, default=ROOT / "build" / "package",
                        help="work folder")
    args = parser.parse_args(argv)
    args.formats = {f.strip() for f in args.formats.split(",") if f.strip()}
    unknown = args.formats - set(FORMATS)
    if unknown:
        parser.error(f"unknown format(s): {', '.join(sorted(unknown))}")
    if not sys.platform.startswith("linux"):
        args.formats = {"folder"}  # installers for Windows/macOS come from the CI workflow
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    editions = EDITIONS if args.edition == "all" else (args.edition,)
    for edition in editions:
        check_edition_installable(edition)
    ensure_build_tools()
    dist, build = args.dist.resolve(), args.build.resolve()
    dist.mkdir(parents=True, exist_ok=True)
    outputs: list[Path] = []
    failures = 0
    started = time.perf_counter()
    for edition in editions:
        folder = run_pyinstaller(edition, dist, build)
        outputs.append(folder)
        if "tar" in args.formats:
            outputs.append(make_tar(folder, dist / f"medviewer-{edition}-{app_version()}-"
                                                   f"{platform_tag()}.tar.gz"))
        if "deb" in args.formats:
            outputs.append(make_deb(edition, folder, dist, build))
        if args.self_test and run_bundle_self_test(folder) != 0:
            failures += 1
    if args.gpu_runtime and sys.platform.startswith("linux"):
        outputs += make_gpu_runtime(dist, build, args.formats)
    log(f"done in {time.perf_counter() - started:.0f} s:")
    for path in outputs:
        size = folder_size(path) if path.is_dir() else path.stat().st_size
        log(f"  {path.relative_to(dist.parent) if path.is_relative_to(dist.parent) else path}"
            f"  {mib(size)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
