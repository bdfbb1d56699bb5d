"""Import heavy modules on first use, so the main window paints before they load.

pydicom (through medviewer.dicom) and pyqtgraph each cost about half a second to import.
The window needs neither to appear: pydicom is first used on the indexing worker, and the
image view builds its pyqtgraph canvas right after the window's first paint.

GUI code that draws with pyqtgraph gets it from :func:`import_pyqtgraph`, which also applies
MedViewer's one global pyqtgraph setting (row-major images).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands in for a module and imports it at the first attribute access (thread-safe:
    ``importlib.import_module`` holds the import lock)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name}>"


# pyqtgraph's RawImageWidget imports cuda-python at import time for CUDA/OpenGL interop that
# MedViewer never uses; where cuda-python is installed (it comes with the GPU runtime) that
# costs 0.1-0.2 s of start-up. This name is hidden only while pyqtgraph itself is imported.
_PYQTGRAPH_SKIPPED_IMPORT = "cuda.bindings.runtime"


def import_pyqtgraph() -> ModuleType:
    """pyqtgraph, configured for MedViewer (row-major images); use this to import it.

    The first call imports it without its optional CUDA interop (later imports of CUDA
    still work) and sets ``imageAxisOrder='row-major'`` once: DICOM arrays are row-major.
    """
    global _pyqtgraph_configured
    import sys

    if "pyqtgraph" in sys.modules or _PYQTGRAPH_SKIPPED_IMPORT in sys.modules:
        import pyqtgraph
    else:
        sys.modules[_PYQTGRAPH_SKIPPED_IMPORT] = None  # makes that one import fail cleanly
        try:
            import pyqtgraph
        finally:
            if sys.modules.get(_PYQTGRAPH_SKIPPED_IMPORT, 0) is None:
                del sys.modules[_PYQTGRAPH_SKIPPED_IMPORT]
    if not _pyqtgraph_configured:
        pyqtgraph.setConfigOptions(imageAxisOrder="row-major", antialias=False)
        _pyqtgraph_configured = True
    return pyqtgraph


_pyqtgraph_configured = False
