"""The same CLI on the JAX backend: keras.distribution.DataParallel over two host devices."""

from __future__ import annotations

import numpy as np
import pytest
from training_helpers import SAMPLE_RUN, cli, error_line, metrics

import keras_preact
from training.sample import load_sample


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
