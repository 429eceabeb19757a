"""Imports point downwards.

- The core, the CLI and the workers never import IPython or ipywidgets (checked in a fresh interpreter).
- No import cycles inside jugnb, counting imports inside functions too (read from the source with ``ast``).
- The backends import nothing from jugnb above them (only :mod:`jugnb.errors`).
- Outside the backends, no code compares a jugdir with a store kind's name or prefix.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CORE = [
    "jugnb",
    "jugnb.cli.app",
    "jugnb.cli.jugrun",
    "jugnb.notebook.export",
    "jugnb.session.kernel",
    "jugnb.session.loader",
    "jugnb.session.tasks",
    "jugnb.status.reader",
    "jugnb.status.render",
    "jugnb.backends.spec",
    "jugnb.notebook.lint",
    "jugnb.backends",
    "jugnb.workers.loop",
    "jugnb.workers.pool",
    "jugnb.staleness.classify",
    "jugnb.cli.jobs",
    "jugnb.launchers.submit",
    "jugnb.launchers.jobs",
]

PACKAGE = Path(__file__).resolve().parents[1] / "jugnb"
STORE_KINDS = ("redis", "dict_store", "file_keepalive", "file")


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_ipython(module: str) -> None:
    code = (
        f"import {module}, sys\n"
        "heavy = ('IPython', 'ipywidgets', 'ipykernel')\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(','.join(leaked))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """jugnb modules that ``path`` imports anywhere in its code (``from . import x`` counts as ``pkg.x``)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("jugnb")}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if module.startswith("jugnb"):
                found.add(module)
                found |= {f"{module}.{a.name}" for a in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in files and m != name} for name, path in files.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    # A package's __init__ importing its own modules is not a cycle through the package: leave those out.
    graph = {
        name: {m for m in deps if not (name.startswith(m + ".") and m + ".__init__" not in deps)}
        for name, deps in _graph().items()
    }
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_backends_import_nothing_above_them() -> None:
    allowed = ("jugnb.backends", "jugnb.errors")
    for name, deps in _graph().items():
        if name.startswith("jugnb.backends"):
            above = sorted(d for d in deps if not d.startswith(allowed) and d != "jugnb")
            assert above == [], f"{name} imports {above}"


def _kind_literals(node: ast.AST) -> list[str]:
    """String constants naming a store kind that ``node`` compares a value with (==, in, startswith)."""
    candidates: list[ast.AST] = []
    if isinstance(node, ast.Compare):
        candidates = [node.left, *node.comparators]
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr in ("startswith", "removeprefix"):
            candidates = list(node.args)
    constants = []
    for candidate in candidates:
        items = candidate.elts if isinstance(candidate, ast.Tuple | ast.List | ast.Set) else [candidate]
        constants += [c.value for c in items if isinstance(c, ast.Constant) and isinstance(c.value, str)]
    return [c for c in constants if c.rstrip(":") in STORE_KINDS or c.startswith(("redis:", "dict_store:"))]


def test_no_store_kind_branches_outside_the_backends() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.is_relative_to(PACKAGE / "backends"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            offenders += [f"{path.relative_to(PACKAGE)}:{node.lineno}: {k!r}" for k in _kind_literals(node)]
    assert offenders == []


def test_store_kind_finder_finds_a_branch() -> None:
    tree = ast.parse('if jugdir.startswith(("redis:", "x")) or kind == "dict_store": pass')
    found = [k for node in ast.walk(tree) for k in _kind_literals(node)]
    assert sorted(found) == ["dict_store", "redis:"]
