"""keras_preact's modules import each other in layers: no circle, and the lower ones without Keras."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "keras_preact"


def _imports() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere (also inside functions and under
    ``TYPE_CHECKING``); a module's own parent packages are not counted."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
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


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
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


def test_no_module_of_keras_preact_imports_one_that_imports_it_back():
    edges = _imports()
    assert "keras_preact.resnet" in edges["keras_preact.convert.conversion"]  # the walk sees them
    assert _circles(edges) == []


def test_the_catalogue_and_the_planner_sit_below_the_builder():
    edges = _imports()
    assert edges["keras_preact.catalogue"] == set()
    for low in ("keras_preact.convert.plan", "keras_preact.convert.layout", "keras_preact.saving"):
        assert "keras_preact.resnet" not in edges[low], low


def test_catalogue_convert_and_weights_import_without_keras():
    code = (
        "import sys\n"
        "import keras_preact.catalogue, keras_preact.convert, keras_preact.weights\n"
        "import keras_preact.convert.__main__, keras_preact.weights.__main__\n"
        "assert 'keras' not in sys.modules, 'keras imported'\n"
        "assert keras_preact.convert.plan_checkpoint and keras_preact.weights.list_weights()\n"
        "assert 'keras' not in sys.modules, 'keras imported'\n"
        "from keras_preact.convert import convert_checkpoint\n"
        "assert 'keras' in sys.modules and 'keras_preact.resnet' in sys.modules\n"
        "assert convert_checkpoint.__module__ == 'keras_preact.convert.conversion'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT, timeout=120)


def test_the_replaced_module_paths_still_import_the_same_objects():
    from keras_preact import cli, command_line, fused_batch_norm, layers, native_logs

    assert cli.cli_main is command_line.cli_main and cli.UserError is command_line.UserError
    assert cli.show_native_logs is native_logs.show_native_logs
    assert layers.use_fused_batch_norm is fused_batch_norm.use_fused_batch_norm
