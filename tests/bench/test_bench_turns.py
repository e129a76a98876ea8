"""Turn-taking (bench.turns): warm workers timed window by window in alternation."""

from __future__ import annotations

import dataclasses
import io
import json
import sys
import textwrap
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from bench.plan import TURNS, group_jobs, plan_tasks, split_turn_group
from bench.report import profile_table, train_table
from bench.results import Record, read_records
from bench.runner import run_jobs
from bench.tasks import Settings
from bench.train_speed import SpeedSettings
from bench.turns import TurnError, TurnGate, paired_ratio, run_turns
from keras_preact.command_line import UserError

ROOT = Path(__file__).resolve().parents[2]

# A contender that follows the protocol with TurnGate and logs each window's start to a file.
FAKE = textwrap.dedent(
    """
    import os, signal, sys, time
    from bench.turns import TurnGate
    name, windows, log, fail_at = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    killed_after = int(sys.argv[5])
    gate = TurnGate.from_stdio("g", windows)
    print("stray output goes to stderr, not into the protocol")
    for i in range(windows):
        gate.before()
        if i == fail_at:
            sys.exit(3)
        with open(log, "a") as f:
            f.write(f"{name} {i}\\n")
        time.sleep(0.01)
        gate.after(0.01 * (i + 1))
        if i == killed_after:  # as the out-of-memory killer would, between two turns
            os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _fake(tmp_path, name, windows, fail_at=-1, killed_after=-1):
    log = tmp_path / "order.log"
    argv = [sys.executable, "-c", FAKE, name, str(windows), str(log), str(fail_at)]
    argv.append(str(killed_after))
    return name, argv, {"PYTHONPATH": str(ROOT)}


def test_contenders_take_turns_in_rotated_order(tmp_path):
    contenders = [_fake(tmp_path, n, 3) for n in ("a", "b", "c")]
    seconds = run_turns(contenders, rounds=3, cwd=ROOT, log=lambda m: None)
    assert seconds == {n: pytest.approx([0.01, 0.02, 0.03]) for n in "abc"}
    order = (tmp_path / "order.log").read_text().split("\n")[:-1]
    assert order == ["a 0", "b 0", "c 0", "b 1", "c 1", "a 1", "c 2", "a 2", "b 2"]


def test_a_contender_that_dies_ends_the_group_and_is_named(tmp_path):
    contenders = [_fake(tmp_path, "a", 3), _fake(tmp_path, "b", 3, fail_at=1)]
    with pytest.raises(TurnError, match=r"b exited \(code 3\) while timing a window"):
        run_turns(contenders, rounds=3, cwd=ROOT, log=lambda m: None)


def test_a_contender_killed_between_turns_is_named_with_its_signal(tmp_path):
    contenders = [_fake(tmp_path, "a", 3, killed_after=0), _fake(tmp_path, "b", 3)]
    # Whether the parent's "go" meets a closed pipe or an empty reply, the message is the same.
    with pytest.raises(
        TurnError, match=r"^a exited \(killed by SIGKILL; if the machine ran out"
    ) as e:
        run_turns(contenders, rounds=3, cwd=ROOT, log=lambda m: None)
    assert "a smaller --max-contenders" in str(e.value)


def test_a_worker_refuses_anything_but_go():
    gate = TurnGate("g", 2, io.StringIO("stop\n"), io.StringIO())
    with pytest.raises(RuntimeError, match="expected 'go' from the parent, got 'stop'"):
        gate.before()


def test_after_its_last_window_a_worker_waits_for_the_end_of_the_group():
    out = io.StringIO()
    gate = TurnGate("g", 1, io.StringIO("go\n"), out)
    gate.before()
    gate.after(1.5)  # reads stdin to its end: returns only once the parent closed it
    assert out.getvalue().splitlines() == ["ready", json.dumps({"seconds": 1.5})]
    assert gate.details()["turn_group"] == "g"


def test_paired_ratio_is_the_median_of_per_round_ratios():
    # Drift doubles both speeds in round 3: the per-round ratio stays 2.
    assert paired_ratio([200, 200, 400], [100, 100, 200]) == 2.0
    with pytest.raises(ValueError, match="differ in number"):
        paired_ratio([1, 2], [1])


def test_turn_groups_replace_the_training_tasks_per_model():
    stages, models = ["train", "infer"], {"train": ["ResNet8V1"], "infer": ["ResNet8V1"]}
    tasks = plan_tasks(stages, models, None, ["eigen"])
    for isolate, where in (("task", 1), ("framework", -1)):
        jobs = group_jobs(tasks, isolate, "turns", max_contenders=6)
        groups = [j for j in jobs if j.process == TURNS]
        assert len(groups) == 1 and jobs.index(groups[0]) % len(jobs) == where % len(jobs)
        assert [(t.impl, t.variant) for t in groups[0].tasks] == [
            ("keras-preact", None),
            ("plain-keras", None),
            ("pytorch", None),
            ("pytorch-compile", None),
            ("keras-preact", "eigen"),
            ("plain-keras", "eigen"),
        ]
        assert not any(t.stage == "train" for j in jobs if j.process != TURNS for t in j.tasks)


def test_a_big_turn_group_is_split_and_every_part_has_the_defaults():
    variants = ["eigen", "xla", "keras-bn", "bfloat16"]
    tasks = plan_tasks(["train"], {"train": ["ResNet8V1"]}, None, variants)[1:]  # no parity
    assert len(tasks) == 4 + 9
    groups = [j for j in group_jobs(tasks, "task", "turns", max_contenders=6) if j.process == TURNS]
    contenders = [[(t.impl, t.variant) for t in g.tasks] for g in groups]
    defaults = [
        ("keras-preact", None),
        ("plain-keras", None),
        ("pytorch", None),
        ("pytorch-compile", None),
    ]
    assert all(c[:4] == defaults and len(c) <= 6 for c in contenders)
    assert [v for c in contenders for v in c[4:]] == [(t.impl, t.variant) for t in tasks[4:]]
    assert len(groups) == 5
    # The compiled peer's bfloat16 variant comes before eager PyTorch's: it shares a group with
    # keras-preact's when the group has room for only some of them.
    bf16 = [t.impl for t in tasks if t.variant == "bfloat16"]
    assert bf16 == ["keras-preact", "plain-keras", "pytorch-compile", "pytorch"]
    # Small enough: one group, as before.
    assert len(split_turn_group(tasks[:5], 5)) == 1
    with pytest.raises(ValueError, match="no room for a variant beside the 4 default ones"):
        split_turn_group(tasks, 4)


def test_each_variant_is_divided_by_the_default_of_its_own_turn_group():
    def img_s(impl, variant, group, windows):
        extra = {"turn_group": group, "windows_img_s": windows}
        r = Record(impl, "ResNet8V1", "train_img_s", windows[0], 16, "cpu", "tensorflow", {})
        return dataclasses.replace(r, stage="train", variant=variant, extra=extra)

    records = [
        img_s("keras-preact", None, "g1", [100.0, 100.0, 100.0]),
        img_s("keras-preact", "eigen", "g1", [50.0, 50.0, 50.0]),
        img_s("keras-preact", None, "g2", [200.0, 200.0, 200.0]),
        img_s("keras-preact", "xla", "g2", [100.0, 100.0, 100.0]),
    ]
    text = "\n".join(profile_table(records))
    assert "| ResNet8V1 | keras-preact | eigen | 50.0 | 100.0 | 0.50× |" in text
    assert "| ResNet8V1 | keras-preact | xla | 100.0 | 200.0 | 0.50× |" in text


@pytest.mark.slow
def test_a_turn_group_times_real_training_in_alternation(tmp_path):
    tasks = plan_tasks(
        ["train"], {"train": ["ResNet8V1"]}, ["keras-preact", "pytorch"], ["keras-bn"]
    )
    jobs = [j for j in group_jobs(tasks, "task", "turns") if j.process == TURNS]
    settings = Settings(workdir=str(tmp_path), speed=SpeedSettings(batch=16, steps=2, repeats=3))
    out = tmp_path / "r.jsonl"
    run_jobs(jobs, settings, out, log=lambda m: None)
    records = {(r.impl, r.variant): r for r in read_records(out)}
    assert set(records) == {("keras-preact", None), ("pytorch", None), ("keras-preact", "keras-bn")}
    groups = {r.extra["turn_group"] for r in records.values()}
    assert len(groups) == 1 and groups.pop().startswith("ResNet8V1-")
    assert all(r.value > 0 and len(r.extra["windows_img_s"]) == 3 for r in records.values())
    # Windows never overlap, and round r of every contender ends before round r + 1 begins.
    spans = sorted(s for r in records.values() for s in r.extra["window_spans"])
    assert all(end <= start for (_, end), (start, _) in pairwise(spans))
    for r in range(2):
        last_of_round = max(rec.extra["window_spans"][r][1] for rec in records.values())
        first_of_next = min(rec.extra["window_spans"][r + 1][0] for rec in records.values())
        assert last_of_round <= first_of_next
    # The report divides window by window.
    ours, torch = records[("keras-preact", None)], records[("pytorch", None)]
    expected = paired_ratio(ours.extra["windows_img_s"], torch.extra["windows_img_s"])
    assert f"| {expected:.2f}× |" in "\n".join(train_table(list(records.values())))
    bn = records[("keras-preact", "keras-bn")]
    expected = paired_ratio(bn.extra["windows_img_s"], ours.extra["windows_img_s"])
    (row,) = [line for line in profile_table(list(records.values())) if "keras-bn" in line]
    assert row.endswith(f"| {expected:.2f}× |")


def test_a_failing_contender_fails_the_run_and_keeps_earlier_output(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text("earlier results\n")
    tasks = plan_tasks(["train"], {"train": ["NoSuchNet"]}, ["pytorch"])
    jobs = [j for j in group_jobs(tasks, "task", "turns") if j.process == TURNS]
    settings = Settings(workdir=str(tmp_path), speed=SpeedSettings(batch=16, steps=2, repeats=1))
    with pytest.raises(UserError, match=r"train pytorch NoSuchNet failed \(pytorch exited"):
        run_jobs(jobs, settings, out, log=lambda m: None)
    assert out.read_text() == "earlier results\n"


def test_runners_take_turns_in_rotated_blocks_after_settle_calls():
    from bench.timing import time_rounds

    calls: list[str] = []
    fns = [lambda name=name: calls.append(name) for name in "abc"]
    times = time_rounds(fns, warmup=1, calls=2, rounds=4, settle=1)
    assert [[len(block) for block in t] for t in times] == [[2, 2, 2, 2]] * 3
    assert calls[:3] == list("abc")  # warm-up
    turns = ["".join(calls[i : i + 3]) for i in range(3, len(calls), 3)]  # settle + 2 timed
    assert turns == [
        "aaa",
        "bbb",
        "ccc",
        "bbb",
        "ccc",
        "aaa",
        "ccc",
        "aaa",
        "bbb",
        "aaa",
        "bbb",
        "ccc",
    ]
    assert all(t >= 0 for ts in times for block in ts for t in block)


def test_imagenet_networks_and_the_feed_stage_in_the_plan():
    from bench.feed_speed import FEED_MODEL

    stages = ["feed", "train"]
    models = {"feed": [FEED_MODEL], "train": ["ResNet8V1", "ResNet50V1"]}
    tasks = plan_tasks(stages, models, None, ["keras-bn"])
    # Networks only are checked for parity; ImageNet ones have no plain Keras model, no compiled
    # PyTorch peer in training, and no variants.
    assert [t.model for t in tasks if t.stage == "parity"] == ["ResNet8V1", "ResNet50V1"]
    assert [t.impl for t in tasks if t.model == "ResNet50V1" and t.stage == "train"] == [
        "keras-preact",
        "pytorch",
    ]
    groups = [j for j in group_jobs(tasks, "task", "turns") if j.process == TURNS]
    assert [[(t.stage, t.model, t.impl) for t in g.tasks] for g in groups] == [
        [("feed", FEED_MODEL, "keras-preact"), ("feed", FEED_MODEL, "pytorch")],
        [
            ("train", "ResNet8V1", "keras-preact"),
            ("train", "ResNet8V1", "plain-keras"),
            ("train", "ResNet8V1", "pytorch"),
            ("train", "ResNet8V1", "pytorch-compile"),
            ("train", "ResNet8V1", "keras-preact"),
        ],
        [("train", "ResNet50V1", "keras-preact"), ("train", "ResNet50V1", "pytorch")],
    ]
    settings = Settings(workdir="w", speed=SpeedSettings(repeats=3))
    settings = dataclasses.replace(settings, feed=dataclasses.replace(settings.feed, repeats=5))
    assert (settings.windows("train"), settings.windows("feed")) == (4, 6)
    assert Settings.from_dict(settings.to_dict()) == settings
    # Batches by family unless given: the papers' 128 for CIFAR, 16 at 224 on the CPU.
    assert SpeedSettings().for_model("ResNet50V1").batch == 16
    assert SpeedSettings(device="gpu").for_model("ResNet50V1").batch == 128
    assert SpeedSettings().for_model("ResNet20V1").batch == 128
    assert SpeedSettings(batch=32).for_model("ResNet50V1").batch == 32


def test_models_given_per_stage_and_imagenet_inference_settings():
    from bench.cli import select_models
    from bench.datasets import load_embedded_sample
    from bench.infer_speed import InferSettings, model_images

    option = "train:ResNet20V1,train:ResNet164V2,infer:resnet20v1,infer:ResNet50V1"
    per_stage, stages = select_models(option, ("train", "infer"), True, False, "cpu")
    assert stages == ("train", "infer")
    assert per_stage["train"] == ("ResNet20V1", "ResNet164V2")
    assert per_stage["infer"] == ("ResNet20V1", "ResNet50V1")
    # Without a stage, a model goes to every stage that takes it: ResNet50V1 to these two.
    per_stage, _ = select_models("ResNet50V1", ("train", "infer"), True, False, "cpu")
    assert per_stage["train"] == per_stage["infer"] == ("ResNet50V1",)
    assert per_stage["profile"] == ()
    # At 224x224 a call costs ~100 CIFAR calls: fewer calls, rounds and images.
    s = InferSettings()
    assert s.for_model("ResNet20V1") is s
    big = s.for_model("ResNet50V1")
    assert (big.warmup, big.repeats, big.repeats_b32, big.rounds, big.settle) == (5, 50, 10, 5, 3)
    assert (big.calibration_images, big.verify_images, big.image_size) == (100, 64, 224)
    sample = load_embedded_sample()
    images = model_images("ResNet50V1", sample, big)
    assert images.x_test.shape == (32, 224, 224, 3) and images.x_train.shape == (100, 224, 224, 3)
    assert images.x_test.dtype == np.uint8
    # The same pixels in every process (PIL, no TensorFlow), and the picture is the image's.
    again = model_images("ResNet50V1", sample, big)
    np.testing.assert_array_equal(images.x_train, again.x_train)
    shrunk = images.x_test[:, 3::7, 3::7].astype(float)  # 32x32 again, roughly
    assert np.abs(shrunk - sample.x_test[:32]).mean() < 20
    assert model_images("ResNet20V1", sample, s) is sample
