"""tf.distribute on a CPU-only machine: two logical CPU replicas, and two workers on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from training_helpers import ROOT, SAMPLE_RUN, env, free_ports, metrics, popen

# Runs in a fresh process: logical CPU devices must be configured before TensorFlow initialises.
FIRST_STEP_LOSSES = r"""
import json, keras
from training.run.pipeline import TrainConfig, prepare
from training.run.strategy import StrategyOptions

class Losses(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.values = []
    def on_train_batch_end(self, batch, logs=None):
        self.values.append(float(logs["loss"]))

out = {}
for key, options in [
    ("mirrored_sync", StrategyOptions("mirrored", cpu_replicas=2, sync_bn=True)),
    ("one_sync", StrategyOptions("one_device", devices=("cpu:0",), sync_bn=True)),
    ("mirrored", StrategyOptions("mirrored", cpu_replicas=2)),
    ("default", StrategyOptions()),
]:
    config = TrainConfig(model="resnet8v1", dataset="cifar10-sample", recipe="demo",
                         recipe_overrides={"batch_size": 32, "epochs": 1}, strategy=options, seed=7)
    prepared = prepare(config)
    losses = Losses()
    with prepared.runtime.scope():
        prepared.model.fit(prepared.train_dataset(), steps_per_epoch=2, epochs=1,
                           callbacks=[losses], verbose=0, shuffle=False)
    out[key] = {"replicas": prepared.runtime.num_replicas, "losses": losses.values,
                "schedule": prepared.schedule.describe()}
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_two_cpu_replicas_match_one_device():
    """Same seed, same global batch: the first-step loss of 2 replicas is that of 1 device (exactly
    with synchronised BatchNorm; without it each replica normalises its half of the batch)."""
    result = subprocess.run(
        [sys.executable, "-c", FIRST_STEP_LOSSES],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))
    assert out["mirrored_sync"]["replicas"] == 2 and out["one_sync"]["replicas"] == 1
    assert out["mirrored_sync"]["losses"][0] == pytest.approx(
        out["one_sync"]["losses"][0], rel=1e-5
    )
    assert out["mirrored_sync"]["losses"][1] == pytest.approx(
        out["one_sync"]["losses"][1], rel=1e-4
    )
    assert out["mirrored"]["losses"][0] == pytest.approx(out["default"]["losses"][0], rel=2e-2)
    # The schedule is a function of the global batch only.
    assert out["mirrored"]["schedule"] == out["default"]["schedule"]


@pytest.mark.slow
def test_two_workers_train_together(tmp_path):
    """Two processes on 127.0.0.1 form a MultiWorkerMirroredStrategy cluster and train one epoch
    (training.run.multi_worker_fit drives it; Keras' fit cannot). The chief writes the run; the other keeps nothing."""
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    out = tmp_path / "run"
    args = [*SAMPLE_RUN, "--batch-size", "100", "--epochs", "1", "--seed", "3"]
    args += ["--strategy", "multi_worker", "--output", str(out), "--backup-every", "4"]
    workers = [
        popen(
            "training.cifar",
            *args,
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
        )
        for i in range(2)
    ]
    try:
        logs = [w.communicate(timeout=600)[0] for w in workers]
    finally:
        for w in workers:
            w.kill()
    assert [w.returncode for w in workers] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert "epoch 1/1" in logs[0] and "done:" in logs[0]
    assert "epoch 1/1" not in logs[1]  # only the chief reports
    result = metrics(out)
    assert result["config"]["runtime"]["workers"] == 2
    assert result["config"]["runtime"]["replicas"] == 2
    assert result["iterations"] == 10 and 0 <= result["final_test_error"] <= 1
    assert (out / "best.keras").is_file() and not (out / "backup").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the worker's state is gone
