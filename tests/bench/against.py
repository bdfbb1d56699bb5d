"""Benchmarks against an earlier commit, in the same run: `python -m tests.bench.against REV NAME...`.

REV's tree is exported to a temporary folder and each named benchmark runs there (REV's own
benchmark code against REV's product) and here, alternately, ``--rounds`` times each, with
the same Python and packages; the headline figures of both are printed with their ratio.
Alternating spreads whatever else the machine does over both sides.

    python -m tests.bench.against HEAD~3 startup label_keypress wizard_stall
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# bench name -> (figure, regex with one number group); lower is better for every figure.
HEADLINES: dict[str, list[tuple[str, str]]] = {
    "startup": [("main window shown, wall s", r"medviewer main window shown\s+([\d.]+)s"),
                ("first image shown, wall s", r"medviewer first sample image shown\s+([\d.]+)s"),
                ("main window shown, CPU s",
                 r"process CPU time[\s\S]*?medviewer main window shown\s+([\d.]+)s")],
    "label_keypress": [("key -> next image, median ms", r"Target p95 .*\(median ([\d.]+),"),
                       ("key -> next image, p95 ms", r"Target p95 .*p95 ([\d.]+) ms over")],
    "wizard_stall": [("longest GUI stall while training, ms",
                      r"longest stall while training: (\d+) ms")],
    "pacs": [("C-GET retrieve of the study, s", r"C-GET: .*?MedViewer ([\d.]+) s"),
             ("WADO-RS retrieve of the study, s", r"WADO-RS: .*?MedViewer ([\d.]+) s")],
}


def export_tree(revision: str, target: Path) -> Path:
    """REV's tracked files in ``target`` (no .git, nothing of this checkout's)."""
    archive = target / "tree.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), revision],
                   cwd=PROJECT_ROOT, check=True)
    tree = target / "tree"
    tree.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    # Benchmarks find the shared data beside the project root, as tests do.
    (target / "shared").symlink_to(PROJECT_ROOT.parent / "shared")
    return tree


def compile_bytecode(tree: Path) -> None:
    """Both sides start as an installed app does, with bytecode: a fresh export has none and,
    under PYTHONDONTWRITEBYTECODE, would compile every module on every start."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "medviewer")],
                   check=True, stdout=subprocess.DEVNULL)


def run_bench(tree: Path, name: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(tree), QT_QPA_PLATFORM=os.environ.get(
        "QT_QPA_PLATFORM", "offscreen"))
    done = subprocess.run([sys.executable, "-m", "tests.bench", name], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed in {tree}: {done.stdout[-1500:]}{done.stderr[-1500:]}")
    return done.stdout


def headline(name: str, output: str) -> dict[str, float]:
    found = {}
    for figure, pattern in HEADLINES.get(name, []):
        match = re.search(pattern, output)
        if match:
            found[figure] = float(match.group(1))
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.against")
    parser.add_argument("revision", help="the earlier commit (e.g. HEAD~5, a hash, main)")
    parser.add_argument("names", nargs="+", choices=sorted(HEADLINES))
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="medviewer-bench-against-") as tmp:
        before_tree = export_tree(args.revision, Path(tmp))
        trees = {"before": before_tree, "now": PROJECT_ROOT}
        for tree in trees.values():
            compile_bytecode(tree)
        figures: dict[tuple[str, str, str], list[float]] = {}
        for round_number in range(args.rounds):
            for name in args.names:
                order = ("before", "now") if round_number % 2 == 0 else ("now", "before")
                for side in order:
                    print(f"round {round_number + 1}: {name} ({side})", flush=True)
                    for figure, value in headline(name, run_bench(trees[side], name)).items():
                        figures.setdefault((name, figure, side), []).append(value)
    revision = subprocess.run(["git", "rev-parse", "--short", args.revision], cwd=PROJECT_ROOT,
                              capture_output=True, text=True).stdout.strip()
    print(f"\nmedians of {args.rounds} rounds; before = {revision}, now = this checkout; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'figure':48s} {'before':>9s} {'now':>9s} {'now/before':>11s}")
    for name in args.names:
        for figure, _pattern in HEADLINES[name]:
            before = figures.get((name, figure, "before"))
            now = figures.get((name, figure, "now"))
            if not before or not now:
                print(f"{name + ': ' + figure:48s} (not found in the output)")
                continue
            b, n = statistics.median(before), statistics.median(now)
            ratio = f"{n / b:10.2f}x" if b else "-"
            print(f"{name + ': ' + figure:48s} {b:9.3f} {n:9.3f} {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
