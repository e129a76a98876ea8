"""bench.step_profile: oneDNN's verbose lines into the parts of a training step, and a real profile."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cli
from bench.plan import group_jobs, plan_tasks
from bench.results import read_records
from bench.runner import run_jobs, worker_env
from bench.step_profile import (
    BEGIN,
    END,
    OTHER,
    OUTSIDE,
    PROFILE_ENV,
    StepProfile,
    conv_flop,
    parse_verbose,
    profile_step,
)
from bench.tasks import Settings
from bench.train_speed import SpeedSettings
from keras_preact.command_line import UserError

ROOT = Path(__file__).resolve().parents[2]
CONV = "mb128_ic16oc16_ih32oh32kh3sh1dh0ph1_iw32ow32kw3sw1dw0pw1"
V1 = "onednn_verbose,v1,primitive,exec,cpu"


def line(kind: str, prop: str, desc: str, ms: float, prefix: str = V1) -> str:
    return f"{prefix},{kind},brg:avx512_core,{prop},src:f32::blocked:acdb::f0,,,{desc},{ms}"


def test_convolution_work_is_counted_from_its_shape():
    assert conv_flop(CONV) == 2 * 128 * 16 * 16 * 32 * 32 * 3 * 3
    # Strided 1x1, square: oneDNN may leave the width out when it equals the height.
    assert conv_flop("mb8_ic16oc32_ih32oh16kh1sh2dh0ph0") == 2 * 8 * 32 * 16 * 16 * 16
    assert (
        conv_flop("mb2_ic3oc8_ih9oh5kh3sh2dh0ph1_iw7ow4kw1sw2dw0pw0") == 2 * 2 * 8 * 3 * 5 * 4 * 3
    )
    assert conv_flop("g4mb1_ic8oc8_ih4oh4kh3sh1dh0ph1_iw4ow4kw3sw1dw0pw1") == 2 * 8 * 2 * 16 * 9
    with pytest.raises(ValueError, match="not a convolution descriptor: 'mb128ic16ih32iw32'"):
        conv_flop("mb128ic16ih32iw32")


def test_only_primitives_inside_the_windows_are_summed_by_part():
    lines = [
        line("convolution", "forward_training", CONV, 100.0),  # warm-up: ignored
        BEGIN,
        line("convolution", "forward_training", CONV, 2.0),
        line("convolution", "backward_weights", CONV, 3.0),
        "onednn_verbose,v1,primitive,create:cache_miss,cpu,convolution,x,forward_training,,,,d,0.5",
        "onednn_verbose,v1,graph,exec,cpu,partition,1.0",
        "some Python output",
        END,
        BEGIN,
        # The format of older oneDNN releases: no version and no "primitive" field.
        line("convolution", "forward_training", CONV, 2.0, prefix="onednn_verbose,exec,cpu"),
        line("batch_normalization", "backward", "mb128ic16ih32iw32", 1.0),
        line("reorder", "undef", "16x3x3x3", 0.25),
        END,
    ]
    parts, windows = parse_verbose(lines)
    assert windows == 2
    summary = {name: (p.ms, p.calls) for name, p in parts.items()}
    assert summary == {
        "convolution forward": (4.0, 2),
        "convolution filter gradient": (3.0, 1),
        "batch norm backward": (1.0, 1),
        "oneDNN reorder": (0.25, 1),
    }
    assert parts["convolution forward"].flop == 2 * conv_flop(CONV)


def test_parts_add_up_to_the_step_and_small_kinds_are_summed():
    parts, _ = parse_verbose(
        [
            BEGIN,
            line("convolution", "forward_training", CONV, 60.0),
            line("batch_normalization", "forward_training", "mb128ic16ih32iw32", 20.0),
            line("reorder", "undef", "16x3x3x3", 0.2),
            line("softmax", "forward_inference", "mb128ic10", 0.1),
            END,
        ]
    )
    rows = list(StepProfile(wall_ms=50.0, parts=parts, steps=2, details={}).rows())
    assert [(name, ms, calls) for name, ms, calls, _ in rows] == [
        ("convolution forward", 30.0, 0.5),
        ("batch norm forward", 10.0, 0.5),
        (OTHER, pytest.approx(0.15), 1.0),
        (OUTSIDE, pytest.approx(9.85), 0.0),
    ]
    assert rows[0][3] == pytest.approx(conv_flop(CONV) / 60.0 / 1e6)  # GFLOP/s
    assert rows[1][3] is None


def test_the_environment_is_set_by_the_runner_not_guessed(monkeypatch):
    for key, _ in PROFILE_ENV:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(UserError, match="ONEDNN_VERBOSE=profile_exec TF_NUM_INTEROP_THREADS=1"):
        profile_step("ResNet8V1", SpeedSettings(batch=8, steps=1, repeats=1))


@pytest.mark.parametrize(
    ("machine", "onednn", "backend", "expected"),
    [
        ("x86_64", None, "tensorflow", True),
        ("AMD64", "1", "tensorflow", True),
        ("x86_64", "0", "tensorflow", False),  # the user turned oneDNN off
        ("arm64", None, "tensorflow", False),
        ("x86_64", None, "jax", False),
    ],
)
def test_the_default_run_profiles_only_where_onednn_runs(
    monkeypatch, machine, onednn, backend, expected
):
    monkeypatch.setattr(cli.platform, "machine", lambda: machine)
    if onednn is None:
        monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    else:
        monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", onednn)
    stages = cli.select_stages(None, backend, "cpu")
    assert ("profile" in stages) is expected
    assert {"accuracy", "train", "infer"} <= set(stages)
    # Asked for, it runs wherever TensorFlow runs on the CPU (and says so when oneDNN is off).
    if backend == "tensorflow":
        assert cli.select_stages("profile", backend, "cpu") == ("profile",)


def test_without_onednn_convolutions_the_profile_fails_in_one_line_per_process(tmp_path):
    out = tmp_path / "r.jsonl"
    args = ["--stages", "profile", "--models", "ResNet8V1", "--batch", "8", "--steps", "1"]
    args += ["--repeats", "1", "--output", str(out), "--workdir", str(tmp_path / "work")]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", *args],
        cwd=ROOT,
        env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert "Traceback" not in proc.stderr
    assert len(errors) == 2  # the worker's reason, then the run's
    assert (
        "is TensorFlow running its convolutions on oneDNN (TF_ENABLE_ONEDNN_OPTS=1)?" in errors[0]
    )
    assert "profile keras-preact ResNet8V1 failed" in errors[1]
    assert not out.exists()


@pytest.mark.slow
def test_a_real_step_is_split_into_every_convolution_of_the_network(tmp_path):
    tasks = plan_tasks(["profile"], {"profile": ["ResNet8V1"]}, None)
    jobs = [j for j in group_jobs(tasks, "framework") if j.tasks[0].stage == "profile"]
    assert len(jobs) == 1 and len(jobs[0].tasks) == 1  # a process of its own
    settings = Settings(workdir=str(tmp_path), speed=SpeedSettings(batch=16, steps=2, repeats=2))
    env = worker_env(jobs[0], settings)
    assert {k: env[k] for k, _ in PROFILE_ENV} == dict(PROFILE_ENV)
    out = tmp_path / "r.jsonl"
    run_jobs(jobs, settings, out, log=lambda m: None)
    records = {r.extra["part"]: r for r in read_records(out)}
    assert all(r.metric == "step_ms" and r.batch == 16 and r.n == 64 for r in records.values())
    # ResNet-8 v1: 7 trainable convolutions (stem and two per unit) and the two option-A
    # shortcuts' fixed strided 1x1 convolutions; no input gradient for the stem, no filter
    # gradient for the fixed shortcuts.
    calls = {
        part: records[part].extra["calls_per_step"]
        for part in (
            "convolution forward",
            "convolution input gradient",
            "convolution filter gradient",
        )
    }
    assert calls == {
        "convolution forward": 9,
        "convolution input gradient": 8,
        "convolution filter gradient": 7,
    }
    assert all(records[part].extra["gflop_s"] > 0 for part in calls)
    assert records["batch norm forward"].extra["calls_per_step"] == 7
    whole = records.pop("whole step").value
    assert whole > 0 and records[OUTSIDE].value > 0
    assert sum(r.value for r in records.values()) == pytest.approx(whole, abs=1e-3)
