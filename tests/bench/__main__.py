"""`make bench`: run every tests/bench/bench_*.py module's main(), or those named on the command line.

Each benchmark measures its own baseline in the same run and prints ratios; figures are
copied into docs/performance.md by hand after a run.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    failed = []
    for name in names:
        print(f"\n===== {name} =====", flush=True)
        started = time.perf_counter()
        try:
            importlib.import_module(f"tests.bench.{name}").main()
        except Exception:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
        print(f"({name}: {time.perf_counter() - started:.1f} s)", flush=True)
    if failed:
        print(f"\nbenchmarks that failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
