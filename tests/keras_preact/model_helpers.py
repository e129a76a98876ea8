"""Helpers shared by the model tests (imported as a plain module: tests are not a package)."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np

DEEP = ("resnet1001v2", "resnet1202v1")
"""The networks too deep for Python's default recursion limit inside Keras."""


def one_batch(model: keras.Model, n: int = 2, seed: int = 0):
    """``n`` random inputs and labels that fit ``model``."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, *model.input_shape[1:])).astype("float32")
    y = np.arange(n) % model.output_shape[-1]
    return x, y


def train_step(model: keras.Model, x, y) -> float:
    """One eager SGD step; asserts a finite loss and that every trainable weight moved."""
    # Eager: tracing a graph of thousands of layers costs more than running one small step.
    model.compile(
        keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy", run_eagerly=True
    )
    before = [w.numpy().copy() for w in model.trainable_weights]
    loss = float(model.train_on_batch(x, y))
    changed = sum(
        not np.array_equal(b, w.numpy())
        for b, w in zip(before, model.trainable_weights, strict=True)
    )
    assert np.isfinite(loss)
    assert changed == len(before)
    return loss


def randomize_batch_norm(layer: keras.layers.BatchNormalization, rng: np.random.Generator) -> None:
    """Non-trivial batch-norm statistics and affine parameters: gamma in [0.5, 1.5), beta and the
    moving mean from N(0, 0.2), the moving variance in [0.5, 2)."""
    c = layer.gamma.shape[0]
    layer.set_weights(
        [
            rng.uniform(0.5, 1.5, c).astype("float32"),
            rng.normal(0.0, 0.2, c).astype("float32"),
            rng.normal(0.0, 0.2, c).astype("float32"),
            rng.uniform(0.5, 2.0, c).astype("float32"),
        ]
    )


def run_on_jax(script: str, out) -> None:
    """Run ``script`` (given ``out`` as its argument) in a process on Keras' JAX backend, and
    check that it ended printing ``jax ok``; the calling test stays on TensorFlow."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "jax ok" in result.stdout
    assert keras.backend.backend() == "tensorflow"
