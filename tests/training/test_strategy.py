"""Strategy options and TF_CONFIG are checked without touching a device; the batch must split evenly."""

from __future__ import annotations

import json

import pytest

from keras_preact.command_line import UserError
from training.run import strategy
from training.run.strategy import StrategyOptions

GOOD = {
    "cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]},
    "task": {"type": "worker", "index": 1},
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", "needs TF_CONFIG"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"task": {"type": "worker", "index": 0}}', "no 'cluster'"),
        ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "non-empty list"),
        (
            '{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}',
            "host:port",
        ),
        (
            '{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}',
            "only 'chief' and 'worker'",
        ),
        ('{"cluster": {"worker": ["a:1"]}}', "no 'task'"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "not a job"),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}',
            "out of range",
        ),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": "0"}}',
            "out of range",
        ),
    ],
)
def test_malformed_tf_config_is_one_line(raw, expected):
    with pytest.raises(UserError) as e:
        strategy.read_tf_config({"TF_CONFIG": raw})
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_tf_config_ranks():
    assert strategy.read_tf_config({"TF_CONFIG": json.dumps(GOOD)}) == GOOD
    assert strategy.tf_config_worker_index(GOOD) == 1
    with_chief = {
        "cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]},
        "task": {"type": "worker", "index": 0},
    }
    assert strategy.tf_config_worker_index(with_chief) == 1
    assert (
        strategy.tf_config_worker_index({**with_chief, "task": {"type": "chief", "index": 0}}) == 0
    )


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (StrategyOptions(name="horovod"), "default, one_device, mirrored, multi_worker"),
        (StrategyOptions(jit_compile="maybe"), "auto, on, off"),
        (StrategyOptions(mixed_precision="int8"), "float32, bfloat16, float16"),
        (StrategyOptions(name="mirrored", devices=("tpu-7",)), "unknown device"),
        (StrategyOptions(name="default", devices=("0",)), "applies to one_device and mirrored"),
        (StrategyOptions(name="one_device", devices=("0", "1")), "one device"),
        (StrategyOptions(name="default", cpu_replicas=2), "mirrored strategy"),
        (StrategyOptions(name="mirrored", cpu_replicas=0), "at least 1"),
        (StrategyOptions(name="mirrored", cpu_replicas=2, devices=("0",)), "not both"),
    ],
)
def test_bad_options(options, expected):
    with pytest.raises(UserError, match=expected):
        strategy.check(options)


def test_multi_worker_checks_tf_config_first(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": 1}')
    with pytest.raises(UserError, match="TF_CONFIG has no 'cluster'"):
        strategy.check(StrategyOptions(name="multi_worker"))


def test_the_plan_carries_what_was_checked(monkeypatch):
    """Devices are parsed and TF_CONFIG is read once, by ``check``; later stages read the plan."""
    plan = strategy.check(StrategyOptions(name="mirrored", devices=("1", "/GPU:0")))
    assert plan.devices == (("gpu", 1), ("gpu", 0)) and plan.worker_index == 0
    assert plan.tf_config is None
    monkeypatch.setenv("TF_CONFIG", json.dumps(GOOD))
    plan = strategy.check(StrategyOptions(name="multi_worker"))
    monkeypatch.delenv("TF_CONFIG")  # the plan holds the cluster it was checked with
    assert plan.tf_config == GOOD and plan.worker_index == 1


def test_device_names():
    assert strategy.normalize_device("1") == ("gpu", 1)
    assert strategy.normalize_device("/device:GPU:3") == ("gpu", 3)
    assert strategy.normalize_device("cpu:0") == ("cpu", 0)


def test_global_batch_must_split_over_the_replicas():
    runtime = strategy.Runtime(
        StrategyOptions(name="mirrored"), "tensorflow", 4, ("a", "b", "c", "d")
    )
    assert runtime.check_batch(128) == 32
    with pytest.raises(UserError, match="global batch 130 does not split evenly over 4 replicas"):
        runtime.check_batch(130)
    with pytest.raises(UserError, match="--eval-batch-size"):
        runtime.check_eval(300, 50)
    runtime.check_eval(300, 100)  # TensorFlow copes with an uneven last batch
    jax_runtime = strategy.Runtime(StrategyOptions(name="mirrored"), "jax", 8, tuple("abcdefgh"))
    with pytest.raises(UserError, match="300 test images do not split evenly over 8 JAX devices"):
        jax_runtime.check_eval(300, 64)


def test_runtimes_in_process():
    def create(**options):
        return strategy.create(strategy.check(StrategyOptions(**options)))

    runtime = create()
    assert runtime.num_replicas == 1 and runtime.is_chief and not runtime.custom_loop
    assert runtime.strategy is None and runtime.devices == ("/cpu:0",)
    one = create(name="one_device", devices=("cpu:0",))
    again = create(name="one_device", devices=("/device:CPU:0",), sync_bn=True)
    assert one.strategy is again.strategy and again.sync_bn  # one strategy per placement
    with pytest.raises(UserError, match="does not exist"):
        create(name="one_device", devices=("gpu:3",))
