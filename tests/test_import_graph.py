"""The package's import graph: no cycles (any import, also those inside functions), and the layering the design
asks for (the data layer never imports the synthetic generator; the model never imports training or serving)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mcd"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the mcd modules it imports anywhere in its source (`from a import b` counts a.b if b is one)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            else:
                continue
            deps.update(t for t in targets if t in modules and t != name)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_in_mcd():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("layer, forbidden", [
    ("mcd.data", ("mcd.synth", "mcd.training", "mcd.serving")),
    ("mcd.model", ("mcd.training", "mcd.serving", "mcd.synth", "mcd.data")),
    ("mcd.task", ("mcd.model", "mcd.training", "mcd.serving", "mcd.synth", "mcd.data")),
    ("mcd.encoders", ("mcd.training", "mcd.serving", "mcd.synth")),
])
def test_layering(layer, forbidden):
    graph = import_graph()
    bad = sorted(f"{m} -> {d}" for m, deps in graph.items() if m == layer or m.startswith(layer + ".")
                 for d in deps if any(d == f or d.startswith(f + ".") for f in forbidden))
    assert not bad, "layering violated: " + "; ".join(bad)
