"""keras_preact's modules import each other in layers: no circle, and the lower ones without Keras."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from import_graph import circles, imports

ROOT = Path(__file__).resolve().parents[2]


def _imports() -> dict[str, set[str]]:
    return imports("keras_preact")


def test_no_module_of_keras_preact_imports_one_that_imports_it_back():
    edges = _imports()
    assert "keras_preact.resnet" in edges["keras_preact.convert.conversion"]  # the walk sees them
    assert circles(edges) == []


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
