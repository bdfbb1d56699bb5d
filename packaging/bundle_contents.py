"""What goes into a bundle, and the notices about it: third-party licences and a CycloneDX SBOM.

Used by ``medviewer.spec`` (during the PyInstaller build, to know which installed Python
distributions ended up in the bundle) and by ``build.py`` (the optional GPU runtime
component). Python-only, no third-party imports, so both can load it.

The GPU runtime split, decided from what onnxruntime's CUDA provider loads (see
docs/performance.md, "Packaging"): ``libonnxruntime_providers_cuda.so`` links cuBLAS,
cuBLASLt, cuRAND and the CUDA runtime; onnxruntime preloads cuDNN, whose engines dlopen the
other cuDNN libraries and NVRTC. cuFFT (FFT contrib ops only), cuSOLVER, cuSPARSE(Lt), NCCL,
NVSHMEM, cuFile, CUPTI, nvJitLink, NVTX and the profiler libraries are torch's, not needed
by onnxruntime to run a CNN classifier.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path, PurePosixPath

LICENSES_FILE = "THIRD-PARTY-LICENSES.txt"
SBOM_FILE = "sbom.cdx.json"

# Linux: what onnxruntime's CUDA execution provider needs, relative to site-packages.
ORT_GPU_PROVIDER_LIBS = (
    "onnxruntime/capi/libonnxruntime_providers_cuda.so",
    "onnxruntime/capi/libonnxruntime_providers_tensorrt.so",  # only loads with TensorRT present
)
CUDA_RUNTIME_PATTERNS = (
    "nvidia/cu13/lib/libcublas.so.*",
    "nvidia/cu13/lib/libcublasLt.so.*",
    "nvidia/cu13/lib/libcurand.so.*",
    "nvidia/cu13/lib/libcudart.so.*",
    "nvidia/cu13/lib/libnvrtc.so.*",
    "nvidia/cu13/lib/libnvrtc-builtins.so.*",
    "nvidia/cudnn/lib/libcudnn*.so.*",
)
# Distributions whose files make up the GPU runtime component (for its licences and SBOM).
CUDA_RUNTIME_DISTRIBUTIONS = ("nvidia-cublas", "nvidia-curand", "nvidia-cuda-runtime",
                              "nvidia-cuda-nvrtc", "nvidia-cudnn-cu13", "onnxruntime-gpu")

LICENSE_FILE_PATTERN = re.compile(r"^(LICEN[CS]E|COPYING|NOTICE|AUTHORS|ThirdPartyNotices)",
                                  re.IGNORECASE)


def is_gpu_runtime_file(destination: str) -> bool:
    """Whether a bundled file belongs to the optional GPU runtime (NVIDIA libs, ORT CUDA EP)."""
    dest = PurePosixPath(destination.replace("\\", "/"))
    return dest.parts[:1] == ("nvidia",) or str(dest) in ORT_GPU_PROVIDER_LIBS


# ---------------------------------------------------------------- which distributions


@dataclass
class BundledDistribution:
    name: str
    version: str
    license: str
    summary: str
    homepage: str
    license_texts: dict[str, str] = field(default_factory=dict)  # relative path -> text
    files: int = 0


def _site_packages() -> list[Path]:
    return [Path(p).resolve() for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]


def installed_file_owners() -> dict[Path, metadata.Distribution]:
    """Every file of every installed distribution (from RECORD), resolved, -> its distribution."""
    owners: dict[Path, metadata.Distribution] = {}
    for dist in metadata.distributions():
        for file in dist.files or ():
            try:
                owners[Path(file.locate()).resolve()] = dist
            except OSError:
                continue
    return owners


def _license_of(dist: metadata.Distribution) -> str:
    meta = dist.metadata
    expression = meta.get("License-Expression")
    if expression:
        return expression
    text = (meta.get("License") or "").strip()
    if text and len(text) < 100 and "\n" not in text:
        return text
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or ()
                   if c.startswith("License ::")]
    if classifiers:
        return "; ".join(classifiers)
    return text.splitlines()[0][:100] if text else "unknown (see the distribution's files)"


def _homepage(dist: metadata.Distribution) -> str:
    meta = dist.metadata
    if meta.get("Home-page"):
        return meta["Home-page"]
    for entry in meta.get_all("Project-URL") or ():
        label, _, url = entry.partition(",")
        if label.strip().lower() in ("homepage", "home", "source", "repository", "source code"):
            return url.strip()
    return ""


def describe(dist: metadata.Distribution, counted_files: int = 0) -> BundledDistribution:
    texts: dict[str, str] = {}
    for file in dist.files or ():
        if LICENSE_FILE_PATTERN.match(file.name) or "licenses" in file.parts[:-1]:
            try:
                texts[str(file)] = Path(file.locate()).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
    meta_license = (dist.metadata.get("License") or "").strip()
    if not texts and meta_license and "\n" in meta_license:
        texts["METADATA License field"] = meta_license  # some projects put the whole text here
    return BundledDistribution(
        name=dist.metadata["Name"], version=dist.version, license=_license_of(dist),
        summary=dist.metadata.get("Summary") or "", homepage=_homepage(dist),
        license_texts=texts, files=counted_files)


def distributions_for(sources: list[str]) -> list[BundledDistribution]:
    """The installed distributions that own any of these source files (bundle contents)."""
    owners = installed_file_owners()
    counts: dict[str, tuple[metadata.Distribution, int]] = {}
    for source in sources:
        try:
            dist = owners.get(Path(source).resolve())
        except OSError:
            continue
        if dist is None:
            continue
        name = dist.metadata["Name"]
        counts[name] = (dist, counts.get(name, (dist, 0))[1] + 1)
    return sorted((describe(dist, n) for dist, n in counts.values()), key=lambda d: d.name.lower())


# ---------------------------------------------------------------- system libraries


@dataclass
class SystemLibrary:
    """A shared library PyInstaller copied from the build machine (not from a wheel)."""

    path: str
    package: str = ""
    version: str = ""
    copyright_text: str = ""


def system_libraries(sources: list[str]) -> list[SystemLibrary]:
    """Libraries from outside the Python installation, with their Debian package where known."""
    prefixes = [Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), *_site_packages()]
    found: list[SystemLibrary] = []
    for source in sorted(set(sources)):
        resolved = Path(source).resolve()
        if any(resolved.is_relative_to(prefix) for prefix in prefixes):
            continue
        found.append(SystemLibrary(str(Path(source).absolute())))
    if found and sys.platform.startswith("linux"):
        _add_debian_packages(found)
    return found


def _add_debian_packages(libraries: list[SystemLibrary]) -> None:
    def candidates(path: str) -> list[str]:
        # dpkg knows the path it installed: the link or its target, under /usr/lib or /lib.
        real = str(Path(path).resolve())
        return [p for c in (path, real) for p in (c, c.replace("/usr/lib/", "/lib/"))]

    queries = sorted({c for lib in libraries for c in candidates(lib.path)})
    try:
        result = subprocess.run(["dpkg", "-S", *queries], capture_output=True, text=True,
                                check=False)
    except OSError:
        return
    owner: dict[str, str] = {}
    for line in result.stdout.splitlines():
        package, _, path = line.partition(": ")
        owner[path.strip()] = package.split(":")[0]
    versions: dict[str, str] = {}
    for lib in libraries:
        lib.package = next((owner[c] for c in candidates(lib.path) if c in owner), "")
        if lib.package and lib.package not in versions:
            query = subprocess.run(["dpkg-query", "-W", "-f=${Version}", lib.package],
                                   capture_output=True, text=True, check=False)
            versions[lib.package] = query.stdout.strip()
        lib.version = versions.get(lib.package, "")
        copyright_file = Path("/usr/share/doc") / lib.package / "copyright"
        if lib.package and copyright_file.is_file():
            lib.copyright_text = copyright_file.read_text(encoding="utf-8", errors="replace")


# ---------------------------------------------------------------- writing the notices


def _python_itself() -> BundledDistribution:
    text = ""
    for candidate in (Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}."
                      f"{sys.version_info.minor}" / "LICENSE.txt",
                      Path(sys.base_prefix) / "LICENSE.txt"):
        if candidate.is_file():
            text = candidate.read_text(encoding="utf-8", errors="replace")
            break
    version = ".".join(map(str, sys.version_info[:3]))
    return BundledDistribution("CPython", version, "PSF-2.0", "The Python interpreter and "
                               "standard library", "https://www.python.org/",
                               {"LICENSE.txt": text} if text else {})


def write_licenses(path: Path, title: str, distributions: list[BundledDistribution],
                   libraries: list[SystemLibrary] = ()) -> None:
    """One text file: every bundled component, its licence and the licence texts it ships."""
    rule = "=" * 78
    out = [title, "", "This bundle contains the following third-party software. Each section "
           "gives the component, its version, its declared licence and the licence texts it "
           "ships.", ""]
    for dist in [_python_itself(), *distributions]:
        out += [rule, f"{dist.name} {dist.version}", f"Licence: {dist.license}"]
        if dist.homepage:
            out.append(f"Home: {dist.homepage}")
        out.append(rule)
        if not dist.license_texts:
            out.append("(No licence text is shipped in this distribution; see its home page.)")
        for name, text in dist.license_texts.items():
            out += [f"--- {name} ---", text.rstrip(), ""]
        out.append("")
    for lib in libraries:
        owner = f"Debian package {lib.package} {lib.version}" if lib.package else "unknown origin"
        out += [rule, f"System library {Path(lib.path).name} ({owner})", rule]
        out += [lib.copyright_text.rstrip() if lib.copyright_text else
                "(No copyright file was found on the build machine.)", ""]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def _purl(name: str, version: str) -> str:
    normalised = re.sub(r"[-_.]+", "-", name).lower()
    return f"pkg:pypi/{normalised}@{version}"


def write_sbom(path: Path, product: str, version: str, distributions: list[BundledDistribution],
               libraries: list[SystemLibrary] = ()) -> None:
    """A CycloneDX 1.5 JSON SBOM of the bundle's components."""
    components = []
    python = _python_itself()
    components.append({"type": "application", "name": "CPython", "version": python.version,
                       "purl": f"pkg:generic/cpython@{python.version}",
                       "licenses": [{"license": {"id": "PSF-2.0"}}]})
    for dist in distributions:
        entry: dict = {"type": "library", "bom-ref": _purl(dist.name, dist.version),
                       "name": dist.name, "version": dist.version,
                       "purl": _purl(dist.name, dist.version),
                       "licenses": [{"expression": dist.license}] if _is_spdx_like(dist.license)
                       else [{"license": {"name": dist.license}}]}
        if dist.summary:
            entry["description"] = dist.summary
        if dist.homepage:
            entry["externalReferences"] = [{"type": "website", "url": dist.homepage}]
        components.append(entry)
    for lib in libraries:
        name = lib.package or Path(lib.path).name
        entry = {"type": "library", "name": name, "version": lib.version or "unknown",
                 "description": f"system library {Path(lib.path).name} copied from the build "
                                "machine"}
        if lib.package:
            entry["purl"] = f"pkg:deb/debian/{lib.package}@{lib.version}"
        if not any(c.get("name") == name and c.get("type") == "library" and "purl" in entry
                   and c.get("purl") == entry["purl"] for c in components):
            components.append(entry)
    sbom = {
        "bomFormat": "CycloneDX", "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}", "version": 1,
        "metadata": {
            "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": "medviewer packaging/"
                                      "bundle_contents.py", "version": version}]},
            "component": {"type": "application", "name": product, "version": version,
                          "bom-ref": f"{product}@{version}"},
        },
        "components": components,
    }
    path.write_text(json.dumps(sbom, indent=2) + "\n", encoding="utf-8")


# Licence ids the SBOM may state as an SPDX expression; anything else goes in as a name.
KNOWN_SPDX_IDS = frozenset({
    "0BSD", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "BSL-1.0", "CC0-1.0", "HPND",
    "ISC", "LGPL-2.1-only", "LGPL-2.1-or-later", "LGPL-3.0-only", "LGPL-3.0-or-later",
    "GPL-2.0-only", "GPL-3.0-only", "GPL-2.0-or-later", "GPL-3.0-or-later", "MIT", "MIT-CMU",
    "MPL-2.0", "PSF-2.0", "Python-2.0", "Unlicense", "Zlib", "BSD-3-Clause-Clear",
    "Qt-GPL-exception-1.0", "LLVM-exception", "Classpath-exception-2.0",
})


def _is_spdx_like(text: str) -> bool:
    tokens = [t for t in re.split(r"[()\s]+", text) if t and t not in ("AND", "OR", "WITH")]
    return bool(tokens) and all(t in KNOWN_SPDX_IDS or t.startswith("LicenseRef-")
                                for t in tokens)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
