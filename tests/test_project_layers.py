"""The project's packages import each other in layers, and no module imports one that imports it back.

bench -> training and export -> keras_preact, nothing upward; inside ``training``, the stages in the
order of ``TRAINING_LAYERS`` (a layer imports only the layers after it), the commands on top.
"""

from __future__ import annotations

import ast

import pytest
from import_graph import ROOT, circles, collapse, imports

PACKAGES = ("keras_preact", "training", "export", "bench")

# Highest first: each imports only from those after it.
PROJECT_LAYERS = (("bench",), ("training", "export"), ("keras_preact",))
TRAINING_LAYERS = (
    "training.experiments",
    "training.evaluation",
    "training.run",
    "training.data",
    "training.recipes",
    "training.choices",
)
COMMANDS = ("cifar", "images", "evaluate", "tune", "reproduce")


@pytest.fixture(scope="module")
def edges() -> dict[str, set[str]]:
    return imports(*PACKAGES)


def test_no_module_imports_one_that_imports_it_back(edges):
    assert "training.run.pipeline" in edges["training.experiments.runs"]  # the walk sees them
    assert circles(edges) == []


def test_no_package_or_subpackage_imports_one_that_imports_it_back(edges):
    assert circles(collapse(edges, 1)) == []
    training = {m: {t for t in ts if t.startswith("training.")} for m, ts in edges.items()}
    training = {m: ts for m, ts in training.items() if m.startswith("training.")}
    for depth in (2, 3):
        assert circles(collapse(training, depth)) == [], depth


def test_packages_import_only_the_layers_below(edges):
    rank = {p: i for i, layer in enumerate(PROJECT_LAYERS) for p in layer}
    for module, targets in collapse(edges, 1).items():
        for target in targets:
            assert rank[target] > rank[module], f"{module} imports {target}"


def test_training_stages_import_only_the_stages_below(edges):
    rank = {p: i for i, p in enumerate(TRAINING_LAYERS)}

    def stage(name: str) -> str | None:
        return next((p for p in TRAINING_LAYERS if name == p or name.startswith(p + ".")), None)

    for module, targets in edges.items():
        if stage(module) is None:
            continue
        for target in targets:
            if target.startswith("training") and stage(target) != stage(module):
                assert stage(target) is not None, f"{module} imports the command layer {target}"
                assert rank[stage(target)] > rank[stage(module)], f"{module} imports {target}"


def test_the_commands_are_imported_by_nothing_but_tests(edges):
    commands = {f"training.{c}" for c in COMMANDS}
    for module, targets in edges.items():
        if module.startswith("training."):
            assert not (targets & commands) or module in commands, module


def test_imports_inside_functions_say_why():
    """An import inside a function of ``training`` keeps ``--help`` light or an optional
    dependency lazy, and a comment in the lines just above says so."""
    unexplained = []
    for path in sorted((ROOT / "training").rglob("*.py")):
        lines = path.read_text().splitlines()
        functions = [
            n
            for n in ast.walk(ast.parse("\n".join(lines)))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        ]
        inside = {
            n.lineno
            for f in functions
            for n in ast.walk(f)
            if isinstance(n, (ast.Import, ast.ImportFrom))
        }
        for lineno in sorted(inside):
            if not any("#" in line for line in lines[max(0, lineno - 6) : lineno]):
                unexplained.append(f"{path.relative_to(ROOT)}:{lineno}")
    assert unexplained == []
