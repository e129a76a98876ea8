"""Type checkers and IDEs see every public name with its signature, and the package stays lazy."""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import keras_preact as kp
from keras_preact import factories, resnet

ROOT = Path(__file__).resolve().parents[2]
INIT = ROOT / "keras_preact" / "__init__.py"


def _type_checking_imports() -> dict[str, str]:
    """Name -> module of the ``from keras_preact.X import N as N`` under ``if TYPE_CHECKING:``."""
    names = {}
    for node in ast.parse(INIT.read_text()).body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom)
                for alias in imp.names:
                    assert alias.asname == alias.name, "re-export as `from m import N as N`"
                    names[alias.name] = imp.module
    return names


def test_every_public_name_is_imported_for_type_checkers():
    imports = _type_checking_imports()
    assert set(imports) == set(kp.__all__)
    for name, module in imports.items():
        assert getattr(kp, name) is getattr(sys.modules[module], name), name


def test_every_named_model_has_an_explicit_factory():
    source = Path(factories.__file__).read_text()
    for info in kp.MODELS.values():
        assert f"\ndef {info.name}(\n" in source
        factory = getattr(kp, info.name)
        assert factory is factories.FACTORIES[info.key]
        assert factory.__name__ == info.name
        assert f"``{info.key}``" in factory.__doc__  # the default name, from the template
    assert sorted(kp.FACTORY_NAMES) == sorted(info.name for info in kp.MODELS.values())
    assert (Path(kp.__file__).parent / "py.typed").is_file()


def test_factory_signatures_are_those_of_keras_applications_plus_options():
    for name in kp.FACTORY_NAMES:
        params = inspect.signature(getattr(kp, name)).parameters
        assert list(params) == [
            "include_top",
            "weights",
            "input_tensor",
            "input_shape",
            "pooling",
            "classes",
            "classifier_activation",
            "name",
            "options",
        ]


def test_typed_options_are_the_builders_keyword_arguments():
    keyword_only = [
        p.name
        for p in inspect.signature(resnet.architecture).parameters.values()
        if p.kind is p.KEYWORD_ONLY
    ]
    assert list(resnet.ArchitectureOptions.__annotations__) == keyword_only
    factory = inspect.signature(kp.ResNet20V1).parameters
    assert set(resnet.ModelArguments.__annotations__) == (
        set(keyword_only)
        | {"preprocessing", "features", "unit"}
        | set(factory) - {"options", "name"}
    )


def test_import_keras_preact_does_not_import_keras():
    code = (
        "import sys, keras_preact\n"
        "keras_preact.FACTORY_NAMES, keras_preact.__all__, dir(keras_preact)\n"
        "assert 'keras' not in sys.modules, 'keras imported'\n"
        "keras_preact.ResNet20V1\n"
        "assert 'keras' in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT, timeout=120)


USER_CODE = """
import keras_preact
from keras_preact import ResNet50V1, get_model

a = ResNet50V1(include_top=False, weights=None, input_shape=(64, 64, 3), pooling="avg")
b = keras_preact.ResNet20V1(classes=100, weight_decay=1e-4, preprocessing="cifar10")
c = keras_preact.Plain56V1(classifier_activation=None, name="plain")
d = get_model("resnet164v2", classes=100, unit="bottleneck", shortcut="conv")
e = keras_preact.ResNet(110, version="v1", shortcut="exclusive_gating", gate_bias=-6.0)
f = keras_preact.ResNet(50, "v2", "imagenet", include_top=False, placement="relu_preact")
names: tuple[str, ...] = keras_preact.MODEL_NAMES
"""

MISTAKES = {
    "ResNet50V1(wieghts=None)": 'Unexpected keyword argument "wieghts" for "ResNet50V1"',
    'keras_preact.ResNet164V2(shortcut_scale="half")': 'Argument "shortcut_scale" to "ResNet164V2" has incompatible type "str"',
    'get_model("resnet20v1", clases=10)': 'Unexpected keyword argument "clases" for "get_model"',
    'keras_preact.ResNet(20, placment="original")': 'Unexpected keyword argument "placment"',
    "keras_preact.ResNet20V2()": 'Module has no attribute "ResNet20V2"',
}


def _mypy(tmp_path: Path, code: str) -> subprocess.CompletedProcess:
    (tmp_path / "user.py").write_text(textwrap.dedent(code))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            # As for an installed package: errors in its own code are not the user's to see.
            "--follow-imports=silent",
            "--ignore-missing-imports",  # Keras ships no type information
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-error-summary",
            "user.py",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(ROOT)},
        timeout=600,
    )


@pytest.mark.slow
def test_mypy_checks_a_users_calls(tmp_path):
    ok = _mypy(tmp_path, USER_CODE)
    assert (ok.returncode, ok.stdout) == (0, ""), ok.stdout + ok.stderr
    bad = _mypy(tmp_path, USER_CODE + "".join(f"\n{call}" for call in MISTAKES))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    errors = [line for line in bad.stdout.splitlines() if ": error: " in line]
    assert len(errors) == len(MISTAKES), bad.stdout
    for message in MISTAKES.values():
        assert any(message in line for line in errors), (message, bad.stdout)
