"""The package layers hold: no import cycle between loadbench's packages, and nothing below report/
imports report/. Read from the source (every import statement, lazy ones inside functions included)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "loadbench"
# Packages that sit below report/ (layers 1-3 and the lower half of 4): they must not import it.
BELOW_REPORT = ("errors", "units", "outcomes", "rxstamp", "plan", "pricing", "config", "protocol", "workload",
                "metrics", "results", "cache")


def _unit(module: str) -> str:
    """loadbench.metrics.summarize -> metrics; loadbench.errors -> errors."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Package -> the loadbench packages its modules import."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in PKG.rglob("*.py"):
        module = _module_name(path)
        src = _unit(module)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    targets = [".".join([*base, node.module] if node.module else base)]
                elif node.module:
                    targets = [node.module]
            for t in targets:
                if t.startswith("loadbench.") and _unit(t) != src:
                    graph[src].add(_unit(t))
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_packages() -> None:
    graph = import_graph()
    assert graph, "no imports found: the graph reader is broken"
    assert _cycles(graph) == []


def test_nothing_below_report_imports_report() -> None:
    graph = import_graph()
    offenders = {p: sorted(graph[p]) for p in BELOW_REPORT if "report" in graph.get(p, set())}
    assert offenders == {}


def test_metrics_does_not_import_results() -> None:
    assert "results" not in import_graph().get("metrics", set())
