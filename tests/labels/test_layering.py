"""The label package's own import graph: no cycle, and no module of it reaches up a layer.

Every import counts, also those inside functions (a lazy import hides a cycle from Python at
start-up, not from the reader of the code). import-linter will check the project's layers;
this test guards the label store's parts meanwhile and states which way they depend.
"""

from __future__ import annotations

import ast
from pathlib import Path

import medviewer.labels

PACKAGE = Path(medviewer.labels.__file__).parent
# What labels/ may import from medviewer: itself, dicom/ and the core modules.
ALLOWED_OUTSIDE = ("medviewer.labels", "medviewer.dicom", "medviewer.errors",
                   "medviewer.jobs", "medviewer.events", "medviewer.paths",
                   "medviewer.settings")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # "from medviewer.labels import schema" imports the module labels.schema
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.startswith("medviewer")}


def label_graph() -> dict[str, set[str]]:
    modules = {f"medviewer.labels.{p.stem}": p for p in PACKAGE.glob("*.py")
               if p.stem != "__init__"}
    return {name: {m for m in imported_modules(path) if m in modules and m != name}
            for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return visiting[visiting.index(node):] + [node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph[node]):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def test_the_label_modules_import_each_other_without_a_cycle():
    graph = label_graph()
    assert "medviewer.labels.store" in graph and graph["medviewer.labels.store"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_label_modules_import_nothing_above_their_layer():
    upward = {}
    for path in PACKAGE.glob("*.py"):
        wrong = {m for m in imported_modules(path)
                 if not any(m == a or m.startswith(a + ".") for a in ALLOWED_OUTSIDE)}
        if wrong:
            upward[path.name] = sorted(wrong)
    assert upward == {}
