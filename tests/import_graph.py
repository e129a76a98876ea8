"""The project's import graph, read from the source (imports anywhere: module level, inside
functions, under ``TYPE_CHECKING``), for the layering tests."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports(*packages: str) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports; a module's own parent packages are not
    counted (importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__``, which is no edge)."""
    modules = {}
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            edges[module] |= {
                n for n in names if n in modules and n != module and not module.startswith(n + ".")
            }
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def collapse(edges: dict[str, set[str]], depth: int) -> dict[str, set[str]]:
    """The graph between packages: every module named by its first ``depth`` parts."""

    def group(name: str) -> str:
        return ".".join(name.split(".")[:depth])

    out: dict[str, set[str]] = {}
    for module, targets in edges.items():
        out.setdefault(group(module), set())
        out[group(module)] |= {group(t) for t in targets if group(t) != group(module)}
    for targets in list(out.values()):
        for t in targets:
            out.setdefault(t, set())
    return out
