"""The same CLI on the JAX backend: keras.distribution.DataParallel over two host devices."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from training_helpers import (
    ROOT,
    SAMPLE_RUN,
    cli,
    diverged_states_are_finite,
    env,
    error_line,
    metrics,
)

import keras_preact
from keras_preact.datasets import load_sample


@pytest.mark.slow
def test_jax_backend_trains_data_parallel(tmp_path):
    out = tmp_path / "run"
    args = [*SAMPLE_RUN, "--epochs", "1", "--seed", "5", "--strategy", "mirrored"]
    result = cli(
        "training.cifar", *args, "--cpu-replicas", "2", "--output", str(out), KERAS_BACKEND="jax"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "epoch 1/1" in result.stdout
    run = metrics(out)
    assert run["versions"]["backend"] == "jax" and "jax" in run["versions"]
    assert run["config"]["runtime"]["replicas"] == 2
    assert run["config"]["runtime"]["devices"] == ["cpu:0", "cpu:1"]
    assert 0 <= run["final_test_error"] <= 1 and run["iterations"] == 20

    # The saved model is an ordinary Keras file: the TensorFlow backend of this process loads it
    # and gets the test error the JAX run recorded.
    sample = load_sample()
    model = keras_preact.load_model(out / "best.keras")
    predicted = model.predict(sample.x_test.astype("float32"), batch_size=100, verbose=0)
    accuracy = float(np.mean(predicted.argmax(axis=1) == sample.y_test))
    assert 1 - accuracy == pytest.approx(run["best_test_error"], abs=1 / 300 + 1e-6)


@pytest.mark.slow
def test_jax_backend_rejects_multi_worker_in_one_line(tmp_path):
    result = cli(
        "training.cifar",
        *SAMPLE_RUN,
        "--strategy",
        "multi_worker",
        "--output",
        str(tmp_path / "run"),
        KERAS_BACKEND="jax",
        TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}}',
    )
    assert "TensorFlow backend" in error_line(result)
    assert not (tmp_path / "run").exists()


# Runs training.cifar with one more callback: it records, for every batch end, whether Keras ran it
# on the main thread (waiting for the step) or late on its own threads.
_PROBE = """
import sys, threading
import keras
from training import cifar
from training.run import pipeline

ends = []

class Probe(keras.callbacks.Callback):
    async_safe = True

    def on_train_batch_end(self, batch, logs=None):
        ends.append(threading.current_thread() is threading.main_thread())

original = pipeline._Session.callbacks
pipeline._Session.callbacks = lambda self, *a, **k: [*original(self, *a, **k), Probe()]
try:
    cifar.main(sys.argv[1:])
finally:
    print(f"batch ends: {len(ends)}, on the main thread: {sum(ends)}")
"""


@pytest.mark.slow
def test_jax_training_does_not_wait_for_every_step(tmp_path):
    """With the progress bar, TensorBoard, backups every 3 steps and the NaN check, every callback of
    a run lets Keras handle batch ends late, so JAX dispatches the next step without waiting."""
    out = tmp_path / "run"
    args = [*SAMPLE_RUN, "--epochs", "2", "--verbose", "bar", "--backup-every", "3"]
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *args, "--output", str(out)],
        cwd=ROOT,
        env=env(KERAS_BACKEND="jax"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "batch ends: 40, on the main thread: 0" in result.stdout
    assert "20/20" in result.stdout  # the progress bar reached the end of each epoch
    assert any((out / "tensorboard").rglob("*tfevents*"))
    assert metrics(out)["iterations"] == 40


@pytest.mark.slow
def test_jax_divergence_stops_with_only_finite_states_saved(tmp_path):
    """The NaN check runs late on JAX; a backup due meanwhile is refused, so every state left to
    resume from has finite weights."""
    out = tmp_path / "run"
    args = [*SAMPLE_RUN, "--epochs", "1", "--lr", "1e6", "--backup-every", "1"]
    result = cli("training.cifar", *args, "--output", str(out), KERAS_BACKEND="jax")
    line = error_line(result)
    assert line.startswith("error: training diverged: the ") and "Lower --lr" in line
    assert not (out / "metrics.json").exists() and not (out / "best.keras").exists()
    diverged_states_are_finite(out)
