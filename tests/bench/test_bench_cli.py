"""`python -m bench` itself: the reduced run end to end, failures, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.plan import Job
from bench.results import REQUIRED, read_records
from bench.runner import partial_path, run_jobs
from bench.tasks import Settings, Task
from export.openvino_export import availability
from keras_preact.command_line import UserError

ROOT = Path(__file__).resolve().parents[2]
# The test environment has OpenVINO (the openvino extra); bfloat16 only where the CPU runs it.
BFLOAT16 = availability().bfloat16
INFER_IMPLS = {
    "keras-preact",
    "savedmodel",
    "tflite-float32",
    "tflite-float16",
    "tflite-dynamic",
    "tflite-int8",
    "onnx",
    "onnx-int8",
    "openvino-float32",
    "openvino-int8",
    "pytorch",
    "pytorch-compile",
    "pytorch-onnx",
    "pytorch-onnx-int8",
    "pytorch-openvino-float32",
    "pytorch-openvino-int8",
    *(["openvino-bfloat16", "pytorch-openvino-bfloat16"] if BFLOAT16 else []),
}


def bench(*args: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_reduced_run_measures_every_implementation(tmp_path):
    out = tmp_path / "smoke.jsonl"
    proc = bench("run", "--reduced", "--output", str(out), "--workdir", str(tmp_path / "work"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not partial_path(out).exists()
    raw = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(set(REQUIRED) <= set(d) for d in raw)
    records = list(read_records(out))
    assert {r.model for r in records} == {"ResNet8V1", "ResNet18V1", "JPEG folder"}

    def values(stage, metric, model="ResNet8V1"):
        return {
            r.impl: r.value
            for r in records
            if r.stage == stage and r.metric == metric and r.model == model
        }

    # Same network everywhere, checked before timing.
    assert set(values("parity", "params").values()) == {75_290}
    assert values("parity", "params", "ResNet18V1") == {
        "keras-preact": 11_181_642,
        "pytorch": 11_181_642,
    }
    train = [
        r
        for r in records
        if r.stage == "train" and r.model == "ResNet8V1" and r.metric != "compile_s"
    ]
    assert {r.impl for r in train} == {"keras-preact", "plain-keras", "pytorch", "pytorch-compile"}
    assert all(r.value > 0 and r.batch == 16 and r.extra["params"] == 75_290 for r in train)
    assert {r.backend for r in train} == {"tensorflow", "torch"}
    # torch.compile's compiling first step is timed apart, outside the windows.
    (compiled,) = [r for r in records if r.metric == "compile_s"]
    assert compiled.impl == "pytorch-compile" and compiled.value > 0
    assert compiled.extra["compiler"] == "torch.compile (inductor, default mode)"
    # On the CPU the three take turns window by window (bench.turns).
    assert len({r.extra["turn_group"] for r in train}) == 1

    # The ImageNet network trains on the JPEG folder, each side through its image pipeline.
    images = {r.impl: r for r in records if r.stage == "train" and r.model == "ResNet18V1"}
    assert set(images) == {"keras-preact", "pytorch"}
    for r in images.values():
        assert r.value > 0 and r.extra["params"] == 11_181_642 and r.extra["image_size"] == 32
        assert r.extra["folder"]["train_images"] == 40
    assert images["pytorch"].extra["loader_workers"] == 2
    # Decoding and augmenting the folder's JPEGs, the two sides in turn with the same workers.
    feed = {r.impl: r for r in records if r.stage == "feed"}
    assert set(feed) == {"keras-preact", "pytorch"}
    assert {(r.metric, r.batch, r.extra["workers"], r.n) for r in feed.values()} == {
        ("feed_img_s", 8, 2, 16)
    }
    assert all(r.value > 0 and r.extra["scale_range"] == [37, 69] for r in feed.values())
    assert len({r.extra["turn_group"] for r in feed.values()}) == 1
    assert feed["keras-preact"].backend == "tensorflow"

    # Where keras-preact's step goes: oneDNN's primitives and the rest add up to the whole step.
    parts = {r.extra["part"]: r for r in records if r.stage == "profile"}
    assert {"convolution forward", "outside oneDNN", "whole step"} <= set(parts)
    whole = parts.pop("whole step").value
    assert sum(r.value for r in parts.values()) == pytest.approx(whole, abs=1e-3)

    lat, b32, acc = values("infer", "lat1_ms"), values("infer", "img_s_b32"), values("infer", "acc")
    assert set(lat) == set(b32) == set(acc) == INFER_IMPLS
    assert all(v > 0 for v in [*lat.values(), *b32.values()])
    # The float formats are the same trained network: the same accuracy on the same images.
    floats = {acc[i] for i in ("keras-preact", "savedmodel", "tflite-float32", "onnx")}
    assert len(floats | {acc["openvino-float32"]}) == 1
    assert acc["pytorch"] == acc["pytorch-onnx"] == acc["pytorch-compile"]
    infer = {
        r.impl: r
        for r in records
        if r.stage == "infer" and r.model == "ResNet8V1" and r.metric == "lat1_ms"
    }
    # What each contender ran in, OpenVINO's as OpenVINO reports it, and its class.
    assert infer["openvino-float32"].extra["precision"] == "float32"
    assert infer["pytorch-openvino-int8"].extra["precision"].startswith("int8, other ops ")
    assert infer["onnx-int8"].extra["precision_class"] == "int8"
    if BFLOAT16:
        assert infer["pytorch-openvino-bfloat16"].extra["precision"] == "bfloat16"
    assert isinstance(infer["openvino-int8"].extra["export_verified"], bool)  # the export's word
    # The ONNX runtimes take turns, and so do the OpenVINO ones.
    assert set(infer["onnx"].extra["interleaved_with"]) == {
        "onnx-int8",
        "pytorch-onnx",
        "pytorch-onnx-int8",
    }
    assert "pytorch-openvino-int8" in infer["openvino-float32"].extra["interleaved_with"]
    assert set(infer["pytorch-compile"].extra["compile_s"]) == {"batch_1", "batch_32"}
    # The ImageNet network, upscaled images, every contender of the CIFAR one.
    imagenet = {
        r.impl: r
        for r in records
        if r.stage == "infer" and r.model == "ResNet18V1" and r.metric == "lat1_ms"
    }
    assert set(imagenet) == INFER_IMPLS and all(r.value > 0 for r in imagenet.values())

    trained = [r for r in records if r.stage == "accuracy" and r.metric == "acc"]
    assert {r.impl for r in trained} == {"keras-preact", "pytorch"}
    assert all(0 <= r.value <= 1 and r.n == 300 and r.seed == 0 for r in trained)
    assert all(r.extra["train_images"] == 256 and r.extra["epochs"] == 1 for r in trained)
    assert acc["keras-preact"] == values("accuracy", "acc")["keras-preact"]

    # The tables printed at the end are what `report` renders from the file.
    table = tmp_path / "README.md"
    assert bench("report", str(out), "--output", str(table)).returncode == 0
    assert table.read_text() in proc.stdout
    assert "| ResNet8V1 | tflite-int8 | int8 |" in table.read_text()
    assert "| ResNet8V1 | int8 | 1 | " in table.read_text()  # the precision classes' targets
    assert "| ResNet18V1 | 16 |" in table.read_text()  # training from JPEG files
    assert "torchvision (ImageFolder + DataLoader) | vs torchvision |" in table.read_text()


@pytest.mark.slow
def test_reduced_run_on_jax_without_tensorflow(tmp_path, jax_without_tensorflow):
    """Where there are JAX and PyTorch but no TensorFlow (bench/gpu_run.sh's GPU machine):
    keras-preact trains through its own pipeline (the NumPy feed), and the infer stage, which
    exports through TensorFlow, is left out."""
    out = tmp_path / "jax.jsonl"
    args = ["run", "--reduced", "--backend", "jax", "--output", str(out)]
    proc = bench(*args, "--workdir", str(tmp_path / "work"), **jax_without_tensorflow)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = list(read_records(out))
    assert {r.stage for r in records} == {"parity", "train", "accuracy"}
    train = {r.impl: r for r in records if r.stage == "train" and r.metric == "train_img_s"}
    assert set(train) == {"keras-preact", "plain-keras", "pytorch", "pytorch-compile"}
    assert train["keras-preact"].backend == train["plain-keras"].backend == "jax"
    assert all(r.value > 0 for r in train.values())
    assert all("tensorflow" not in r.versions for r in records)
    explicit = bench(
        *args,
        "--stages",
        "infer",
        "--overwrite",
        "--workdir",
        str(tmp_path / "work2"),
        **jax_without_tensorflow,
    )
    assert explicit.returncode == 2 and "TensorFlow, which is not installed" in explicit.stderr
    # keras-preact's image feed and image training are tf.data.
    explicit = bench(*args, "--stages", "feed", "--overwrite", **jax_without_tensorflow)
    assert explicit.returncode == 2 and "tf.data image feed, and TensorFlow" in explicit.stderr
    image_model = ["--stages", "train", "--models", "ResNet50V1", "--overwrite"]
    explicit = bench(*args, *image_model, **jax_without_tensorflow)
    assert explicit.returncode == 2 and "image pipeline, and TensorFlow" in explicit.stderr


def test_a_failed_job_keeps_earlier_output_and_what_it_measured(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text("earlier results\n")
    # PyTorch's accuracy run needs the recipe keras-preact's run writes: it fails at once.
    jobs = [Job("torch", [Task("accuracy", "pytorch", "ResNet8V1")])]
    with pytest.raises(UserError, match=r"accuracy pytorch ResNet8V1 failed \(exit 2"):
        run_jobs(jobs, Settings(workdir=str(tmp_path / "work")), out, log=lambda m: None)
    assert out.read_text() == "earlier results\n"
    assert partial_path(out).read_text() == ""


def _corrupt_npz(tmp_path: Path) -> Path:
    path = tmp_path / "bad.npz"
    path.write_bytes(b"not a zip")
    return path


def _wrong_shape_npz(tmp_path: Path) -> Path:
    path = tmp_path / "shape.npz"
    x = np.zeros((4, 28, 28, 3), np.uint8)
    np.savez(path, x_train=x, y_train=np.zeros(4), x_test=x, y_test=np.zeros(4))
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--stages", "train,speed"],
            "unknown stages 'speed'; allowed: accuracy, feed, train, profile",
        ),
        (["--stages", "profile", "--backend", "jax"], "it needs --backend tensorflow --device cpu"),
        (["--impls", "tensorflow"], "unknown impls 'tensorflow'; allowed: keras-preact"),
        (["--models", "resnet21v1"], "unknown model 'resnet21v1'; allowed: ResNet8V1"),
        (["--backend", "torch"], "unknown backend 'torch'; allowed: tensorflow, jax"),
        (["--data", "{tmp}/missing.npz"], "missing.npz: no such file"),
        (["--data", "corrupt"], "bad.npz: not a readable .npz file"),
        (["--data", "shape"], "x_train must be uint8 images of shape (N, 32, 32, 3)"),
        ([], "the accuracy stage needs --data PATH.npz"),
        (["--stages", "accuracy", "--impls", "pytorch"], "include keras-preact"),
        (["--output", "{tmp}/nodir/r.jsonl"], "nodir does not exist"),
        (["--epochs", "0", "--stages", "train"], "--epochs must be at least 1, got 0"),
        (["--workers", "0", "--stages", "feed"], "--workers must be at least 1, got 0"),
        (["--batch", "0", "--stages", "train"], "--batch must be at least 1, got 0"),
        (
            ["--stages", "train", "--models", "ResNet50V1", "--variants", "keras-bn"],
            "--variants profile the training of the CIFAR networks; --models has none",
        ),
        (
            ["--stages", "train,profile", "--models", "ResNet50V1"],
            "ImageNet networks are measured in the train and infer stages only, and --stages "
            "profile has no other",
        ),
        (
            ["--stages", "train", "--models", "profile:ResNet50V1"],
            "--models profile:ResNet50V1: ImageNet networks are measured in the train and infer",
        ),
        (["--stages", "train", "--models", "speed:ResNet20V1"], "unknown stage 'speed'"),
        (["--pairing", "mixed", "--stages", "train"], "unknown --pairing 'mixed'; allowed: turns"),
        (["--max-contenders", "0", "--stages", "train"], "--max-contenders must be at least 1"),
        (
            ["--max-contenders", "3", "--stages", "train", "--variants", "eigen"],
            "--max-contenders 3: at most 3 contenders at once leaves no room for a variant",
        ),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "r.jsonl"
    data = {"corrupt": _corrupt_npz, "shape": _wrong_shape_npz}
    args = [str(data[a](tmp_path)) if a in data else a.format(tmp=tmp_path) for a in args]
    if "--output" not in args:
        args += ["--output", str(out)]
    proc = bench("run", *args)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
    assert message in proc.stderr
    assert list(tmp_path.glob("r.jsonl*")) == []


def test_existing_output_is_not_replaced_without_overwrite(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text("kept\n")
    proc = bench("run", "--reduced", "--output", str(out))
    assert proc.returncode == 2
    assert proc.stderr == f"error: {out} exists; pass --overwrite to replace it\n"
    assert out.read_text() == "kept\n"


def test_report_of_a_file_that_is_not_results(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text('{"hello": 1}\n')
    proc = bench("report", str(path))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {path}:1: not a benchmark record: missing keys")


def test_profiling_variants_get_their_own_process_and_environment(tmp_path):
    from bench.plan import group_jobs, plan_tasks
    from bench.runner import worker_env
    from bench.train_speed import SpeedSettings

    tasks = plan_tasks(["train"], {"train": ["ResNet8V1"]}, None, ["eigen", "channels-last"])
    jobs = group_jobs(tasks, "framework")
    variant_jobs = [j for j in jobs if any(t.variant for t in j.tasks)]
    assert [(t.impl, t.variant) for j in variant_jobs for t in j.tasks] == [
        ("keras-preact", "eigen"),
        ("plain-keras", "eigen"),
        ("pytorch", "channels-last"),
    ]
    assert all(len(j.tasks) == 1 for j in variant_jobs)
    settings = Settings(workdir=str(tmp_path), speed=SpeedSettings(batch=16, steps=2, repeats=1))
    assert worker_env(variant_jobs[0], settings)["TF_ENABLE_ONEDNN_OPTS"] == "0"
    default_env = worker_env(jobs[0], settings)
    assert default_env.get("TF_ENABLE_ONEDNN_OPTS") == os.environ.get("TF_ENABLE_ONEDNN_OPTS")

    out = tmp_path / "r.jsonl"
    run_jobs(variant_jobs[-1:], settings, out, log=lambda m: None)
    (record,) = read_records(out)
    assert (record.impl, record.variant, record.metric) == (
        "pytorch",
        "channels-last",
        "train_img_s",
    )
    assert record.value > 0 and record.extra["params"] == 75_290


@pytest.mark.slow
def test_bfloat16_variant_trains_every_implementation_in_bfloat16(tmp_path):
    from bench.plan import group_jobs, plan_tasks
    from bench.train_speed import SpeedSettings

    tasks = plan_tasks(["train"], {"train": ["ResNet8V1"]}, None, ["bfloat16"])
    variant_jobs = [j for j in group_jobs(tasks, "task") if any(t.variant for t in j.tasks)]
    settings = Settings(workdir=str(tmp_path), speed=SpeedSettings(batch=16, steps=2, repeats=1))
    out = tmp_path / "r.jsonl"
    run_jobs(variant_jobs, settings, out, log=lambda m: None)
    records = [r for r in read_records(out) if r.metric == "train_img_s"]
    assert sorted(r.impl for r in records) == [
        "keras-preact",
        "plain-keras",
        "pytorch",
        "pytorch-compile",
    ]
    for r in records:
        assert r.variant == "bfloat16" and r.value > 0
        # What the network computed in, read back from the model (not the requested setting).
        assert (r.extra["precision"], r.extra["compute_dtype"]) == ("bfloat16", "bfloat16"), r.impl
