"""Kill a run mid-epoch, re-run the same command: it resumes from the backup and ends like a run that
was never interrupted (same seed: same weights, same test error). On TensorFlow (tf.data feed) and on
JAX in a Python without TensorFlow, like a GPU machine set up for JAX alone (NumPy feed, no
TensorBoard logs)."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from training_helpers import SAMPLE_RUN, cli, metrics, popen

import keras_preact
from training.run.report import read_history

ARGS = [*SAMPLE_RUN, "--epochs", "2", "--seed", "11", "--backup-every", "7"]
STEPS_PER_EPOCH = 20  # 1,000 sample images at batch 50


def _wait_for(path, process, timeout=300):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.stdout.read()[-3000:]
        assert time.monotonic() < deadline, f"no {path.name} after {timeout}s"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax-without-tensorflow"])
def test_killed_run_resumes_and_matches_an_uninterrupted_one(tmp_path, backend, request):
    reference = tmp_path / "reference"
    interrupted = tmp_path / "interrupted"
    env = {} if backend == "tensorflow" else request.getfixturevalue("jax_without_tensorflow")

    # The uninterrupted run goes alongside (separate processes share nothing but the CPU).
    straight = popen("training.cifar", *ARGS, "--output", str(reference), **env)
    process = popen("training.cifar", *ARGS, "--output", str(interrupted), **env)
    try:
        # Kill (SIGKILL, no clean-up) once a mid-epoch backup of epoch 2 exists.
        _wait_for(interrupted / "backup" / "step-000000028.json", process)
        process.kill()
        first_log = process.communicate()[0]
        assert "epoch 1/2" in first_log and "done:" not in first_log
        assert not (interrupted / "metrics.json").exists()

        resumed = cli("training.cifar", *ARGS, "--output", str(interrupted), **env)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        straight_log = straight.communicate(timeout=600)[0]
        assert straight.returncode == 0, straight_log[-3000:]
    finally:
        for child in (process, straight):
            child.kill()

    where = re.search(r"resuming .* at epoch (\d+), batch (\d+)", resumed.stdout)
    assert where, resumed.stdout
    step = (int(where[1]) - 1) * STEPS_PER_EPOCH + int(where[2]) - 1
    assert 28 <= step < 40 and step % STEPS_PER_EPOCH  # a mid-epoch backup, not from scratch
    assert "epoch 1/2" not in resumed.stdout and "epoch 2/2" in resumed.stdout

    ours, theirs = metrics(interrupted), metrics(reference)
    for key in ("final_test_error", "best_test_error", "best_epoch", "epochs", "iterations"):
        assert ours[key] == theirs[key], key
    rows, reference_rows = (
        read_history(interrupted / "history.csv"),
        read_history(reference / "history.csv"),
    )
    assert [r["epoch"] for r in rows] == [0, 1]  # no duplicate rows from the replayed epoch
    for row, expected in zip(rows, reference_rows, strict=True):
        assert (
            row["val_loss"] == expected["val_loss"]
            and row["val_accuracy"] == expected["val_accuracy"]
        )
        # The training means cover the whole epoch, the batches before the kill included.
        assert row["loss"] == pytest.approx(expected["loss"], rel=1e-5)
        assert row["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-6)
    for name in ("last.keras", "best.keras"):
        a = keras_preact.load_model(interrupted / name).get_weights()
        b = keras_preact.load_model(reference / name).get_weights()
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    assert not (interrupted / "backup").exists()
    assert (interrupted / "tensorboard").is_dir() == (backend == "tensorflow")
    assert ("no TensorBoard logs" in resumed.stderr) == (backend != "tensorflow")
    assert metrics(interrupted)["versions"]["backend"] == backend.split("-")[0]
