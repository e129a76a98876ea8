"""Test-wide settings: quiet TensorFlow logs, a fresh Keras graph per test."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import pytest


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Reset Keras' global state (name counters, policies) so tests do not leak into each other."""
    keras.backend.clear_session()
    yield
    keras.config.set_dtype_policy("float32")
