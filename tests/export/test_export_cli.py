"""``python -m export``: versions, the repository layout, verification failures, bad input."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_preact
from export import repository
from export.__main__ import main
from export.options import plan_export
from export.pipeline import export_model
from keras_preact.command_line import UserError


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (empty when it does not exist)."""
    root = Path(root)
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def repo_copy(exported, tmp_path_factory) -> Path:
    """A copy of the exported repository that this module's tests may add versions to."""
    target = tmp_path_factory.mktemp("cli") / "repo"
    shutil.copytree(exported.repository, target)
    return target


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(args)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_second_export_is_version_2_and_leaves_version_1_untouched(
    repo_copy, trained_model_path, exported, capsys
):
    before = snapshot(repo_copy / exported.name / "1")
    before_artifacts = snapshot(repo_copy / "artifacts" / exported.name / "1")
    assert before and before_artifacts
    code, out, err = run_cli(
        [
            "--model",
            trained_model_path,
            "--output",
            str(repo_copy),
            "--formats",
            "savedmodel",
            "--labels",
            "cifar10",
            "--num-images",
            "32",
            "--latency-runs",
            "0",
        ],
        capsys,
    )
    assert code == 0, err
    assert (repo_copy / exported.name / "2" / "saved_model.pb").is_file()
    assert snapshot(repo_copy / exported.name / "1") == before
    assert snapshot(repo_copy / "artifacts" / exported.name / "1") == before_artifacts
    # The table is printed, one row per verified artifact.
    for row in ("keras", "savedmodel:serving_default", "savedmodel:serving_bytes"):
        assert row in out
    assert f"exported '{exported.name}' version 2" in out
    # models.config still lists the model once (TF Serving picks the highest version).
    assert (repo_copy / "models.config").read_text().count(f'name: "{exported.name}"') == 1
    assert not [p for p in repo_copy.iterdir() if p.name.startswith(".")]


def test_verification_failure_publishes_nothing(repo_copy, trained_model_path, exported):
    before = snapshot(repo_copy)
    # A negative tolerance cannot be met: the check must fail and keep the files aside.
    result = export_model(
        trained_model_path,
        repo_copy,
        formats="savedmodel",
        labels="cifar10",
        num_images=8,
        latency_runs=0,
        float_tolerance=-1.0,
        log=lambda message: None,
    )
    assert not result.published and not result.report.passed
    assert result.savedmodel is None
    versions = sorted(p.name for p in (repo_copy / exported.name).iterdir())
    assert str(result.version) not in versions
    assert result.artifacts_dir.name.startswith(f"rejected-{result.version}-")
    assert (result.artifacts_dir / "report.json").is_file()
    assert (result.artifacts_dir / "savedmodel" / "saved_model.pb").is_file()
    after = snapshot(repo_copy)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing changed
    assert all("rejected-" in k for k in set(after) - set(before))


@pytest.fixture(scope="module")
def no_preprocess_model(tmp_path_factory) -> str:
    """A ResNet-20 built without a 'preprocess' layer, saved untrained."""
    path = tmp_path_factory.mktemp("plain") / "plain.keras"
    keras_preact.ResNet20V1(preprocessing=None).save(path)
    return str(path)


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory) -> str:
    """A ResNet-20 taking 32x48 images, saved untrained."""
    path = tmp_path_factory.mktemp("wide") / "wide.keras"
    keras_preact.ResNet20V1(input_shape=(32, 48, 3), preprocessing="cifar10").save(path)
    return str(path)


BAD_INPUT = {
    "missing model file": (["--model", "{tmp}/missing.keras"], "model file not found"),
    "non-Keras file": (["--model", "{tmp}/text.keras"], "is not a Keras model"),
    "wrong extension": (["--model", "{tmp}/weights.bin"], "is not a Keras model file"),
    "unknown format": (["--formats", "savedmodel,caffe"], "unknown format 'caffe'"),
    "unknown quantization": (["--quantize", "int4"], "unknown quantization 'int4'"),
    "int8 without representative data": (
        ["--representative-data", "{tmp}/empty.npy"],
        "int8 quantization needs representative data",
    ),
    "representative data file missing": (
        ["--representative-data", "{tmp}/nope.npy"],
        "representative data file not found",
    ),
    "output is a file": (["--output", "{tmp}/text.keras"], "is a file; expected a directory"),
    "existing version": (["--version", "1"], "version 1 of model 'resnet20v1' already exists"),
    "version zero": (["--version", "0"], "--version must be a positive integer"),
    "unknown labels": (["--labels", "imagenet21k"], "--labels 'imagenet21k' is neither"),
    "labels file with wrong count": (["--labels", "{tmp}/labels.txt"], "has 3 names but"),
    "bad name": (["--name", "../evil"], "invalid model name '../evil'"),
    "unknown preprocessing": (["--preprocessing", "zca"], "unknown preprocessing 'zca'"),
    "unknown bytes resize": (["--bytes-resize", "crop"], "unknown --bytes-resize 'crop'"),
    "center crop of a non-square input": (
        ["--model", "{wide}", "--bytes-resize", "center-crop"],
        "--bytes-resize center-crop needs a square input; {wide} takes 32x48 images",
    ),
    "double preprocessing": (["--preprocessing", "cifar10"], "already normalises its input"),
    "no preprocess layer": (["--model", "{plain}"], "has no 'preprocess' layer"),
    "unsupported opset": (["--opset", "30"], "--opset 30 is not supported; choose 13..18"),
    "unknown option": (["--colour", "red"], "unrecognized arguments: --colour red"),
    "non-integer version": (["--version", "two"], "invalid int value: 'two'"),
    "corrupt models.config": (["--output", "{badrepo}"], "not a valid ModelServerConfig"),
    "models.config is a folder": (["--output", "{dirrepo}"], "cannot read {dirrepo}/models.config"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_one_line_exit_2_nothing_written(
    case, repo_copy, trained_model_path, no_preprocess_model, wide_model, tmp_path, capsys
):
    (tmp_path / "text.keras").write_text("not a zip archive")
    (tmp_path / "weights.bin").write_bytes(b"\0" * 16)
    np.save(tmp_path / "empty.npy", np.zeros((0, 32, 32, 3), np.uint8))
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    badrepo = tmp_path / "badrepo"
    badrepo.mkdir()
    (badrepo / "models.config").write_text("model_config_list { config { nme: 'x' } }")
    dirrepo = tmp_path / "dirrepo"
    (dirrepo / "models.config").mkdir(parents=True)
    args, message = BAD_INPUT[case]
    values = {"tmp": tmp_path, "plain": no_preprocess_model, "badrepo": badrepo}
    values["wide"] = wide_model
    values["dirrepo"] = dirrepo
    message = message.format(**values)
    base = {"--model": trained_model_path, "--output": str(repo_copy)}
    extra = [a.format(**values) for a in args]
    for flag in list(base):
        if flag in extra:
            base.pop(flag)
    argv = [x for kv in base.items() for x in kv] + extra + ["--latency-runs", "0"]
    before_repo, before_bad, before_tmp = snapshot(repo_copy), snapshot(badrepo), snapshot(tmp_path)
    code, out, err = run_cli(argv, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert message in err, err
    assert "Traceback" not in err and out == ""
    assert snapshot(repo_copy) == before_repo
    assert snapshot(badrepo) == before_bad
    assert snapshot(tmp_path) == before_tmp
    assert not list(repo_copy.glob(".staging-*"))


def test_int8_without_representative_data_in_python(trained_model_path, tmp_path):
    with pytest.raises(UserError, match="int8 quantization needs representative data"):
        export_model(tmp_path / "missing.keras", tmp_path / "out", representative_data=None)
    empty = np.zeros((0, 32, 32, 3), np.uint8)
    with pytest.raises(UserError, match="int8 quantization needs representative data"):
        export_model(trained_model_path, tmp_path / "out", representative_data=empty)
    assert list(tmp_path.iterdir()) == []


def test_the_plan_is_resolved_once_from_the_options(trained_model_path, tmp_path):
    plan = plan_export(
        trained_model_path,
        tmp_path / "out",
        formats="onnx, tflite",
        quantize=["int8", "float16"],
        representative_data="sample",
    )
    # float32 first, then the modes in their fixed order; the calibration source is kept.
    assert plan.formats == ("onnx", "tflite")
    assert plan.tflite_modes == ("float32", "float16", "int8")
    assert plan.representative_data == "sample" and plan.onnx_opset == 17
    # Without int8 no calibration images are needed, and without tflite no modes are planned.
    plan = plan_export(
        trained_model_path, tmp_path / "out", formats="savedmodel", representative_data=None
    )
    assert plan.tflite_modes == () and plan.representative_data is None
    assert plan.onnx_opset is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.top_k = 3
    with pytest.raises(UserError, match=r"--latency-runs must be 0 .* got -1"):
        plan_export(trained_model_path, tmp_path / "out", latency_runs=-1)
    assert list(tmp_path.iterdir()) == []


def test_mixed_precision_model_exports_float32(tmp_path, sample):
    previous = keras.config.dtype_policy().name
    keras.config.set_dtype_policy("mixed_float16")
    try:
        mixed = keras_preact.ResNet20V1(preprocessing="cifar10")
    finally:
        keras.config.set_dtype_policy(previous)
    path = tmp_path / "mixed.keras"
    mixed.save(path)
    result = export_model(
        path,
        tmp_path / "repo",
        formats="savedmodel,onnx",
        num_images=32,
        latency_runs=0,
        log=lambda message: None,
    )
    assert result.published, result.report.failures
    assert result.report.metadata["source_dtype_policy"] == "mixed_float16"
    loaded = tf.saved_model.load(str(result.savedmodel))
    fn = loaded.signatures["serving_default"]
    assert fn.structured_outputs["probabilities"].dtype == tf.float32
    # Float32 all the way through: within float32 rounding of a float32 copy of the weights,
    # and only float16-close to the mixed-precision model itself.
    reference = keras_preact.ResNet20V1(preprocessing="cifar10")
    reference.set_weights(mixed.get_weights())
    images = sample.x_test[:32]
    probs = fn(images=tf.constant(images, tf.float32))["probabilities"].numpy()
    assert np.max(np.abs(probs - reference.predict(images.astype(np.float32), verbose=0))) < 1e-5
    mixed_probs = mixed.predict(images.astype(np.float32), verbose=0)
    assert np.max(np.abs(probs - mixed_probs)) < 5e-2


def dead_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_staging_folders_of_killed_exports_are_removed_live_ones_kept(tmp_path):
    prefix = repository._staging_prefix()
    stale = tmp_path / f"{prefix}{dead_pid()}-abcd1234"
    live = tmp_path / f"{prefix}{os.getpid()}-efgh5678"
    other_host = tmp_path / f"{repository.STAGING_PREFIX}elsewhere-{dead_pid()}-x"
    unknown = tmp_path / f"{repository.STAGING_PREFIX}k3j4h5g6"  # no process id
    for folder in (stale, live, other_host, unknown):
        (folder / "savedmodel").mkdir(parents=True)
        (folder / "savedmodel" / "saved_model.pb").write_bytes(b"half written")
    assert repository.remove_stale_staging_dirs(tmp_path) == [stale]
    assert sorted(tmp_path.iterdir()) == sorted([live, other_host, unknown])
    # The folder an export stages in carries its process id.
    with repository.staging_dir(tmp_path) as staging:
        assert staging.name.startswith(f"{prefix}{os.getpid()}-")
        assert repository.remove_stale_staging_dirs(tmp_path) == []
    assert not staging.exists()
