"""Test-wide settings: quiet TensorFlow logs, a fresh Keras graph per test; a Python without
TensorFlow for child processes."""

from __future__ import annotations

import os
import sysconfig
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The image scan's cache (training.data.images.decode_cache) in a temporary folder, never the user's.
os.environ["KERAS_PREACT_CACHE"] = tempfile.mkdtemp(prefix="keras-preact-cache-")

import keras
import pytest


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Reset Keras' global state (name counters, policies) so tests do not leak into each other."""
    keras.backend.clear_session()
    yield
    keras.config.set_dtype_policy("float32")


TENSORFLOW_PACKAGES = ("tensorflow", "tf2onnx", "tf_keras")
"""Name prefixes of the installed entries a TensorFlow-free environment leaves out."""


@pytest.fixture
def jax_without_tensorflow(tmp_path) -> dict[str, str]:
    """The environment of a child process (and its children) on the JAX backend that cannot import
    TensorFlow, like the GPU machine's Python: a folder links every installed package but
    TensorFlow's, and a ``sitecustomize`` puts it in place of site-packages."""
    root = Path(__file__).resolve().parents[1]
    links = tmp_path / "no-tensorflow" / "site-packages"
    links.mkdir(parents=True)
    site_packages = Path(sysconfig.get_paths()["purelib"])
    for entry in site_packages.iterdir():
        if not entry.name.lower().startswith(TENSORFLOW_PACKAGES):
            (links / entry.name).symlink_to(entry)
    (links.parent / "sitecustomize.py").write_text(
        "import sys\n"
        f"sys.path[:] = [p for p in sys.path if p != {str(site_packages)!r}] + [{str(links)!r}]\n"
    )
    return {"PYTHONPATH": f"{links.parent}{os.pathsep}{root}", "KERAS_BACKEND": "jax"}
