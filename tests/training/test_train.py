"""End-to-end training through the pipeline and the CLI: the embedded sample and tfds mock data."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds
from training_helpers import ROOT, env

import keras_preact
from keras_preact.command_line import UserError
from keras_preact.datasets import load_sample
from training import cifar
from training.run import run_folder as rundir
from training.run.pipeline import TrainConfig, prepare, train
from training.run.report import read_history


def _config(tmp_path, **overrides) -> TrainConfig:
    fields = dict(
        model="resnet8v1",
        dataset="cifar10-sample",
        recipe="demo",
        recipe_overrides={"epochs": 2, "batch_size": 50},
        output=str(tmp_path / "run"),
        verbose="line",
        seed=0,  # a fixed seed makes the run deterministic: "the loss falls" cannot flake
    )
    fields.update(overrides)
    return TrainConfig(**fields)


def test_sample_run_end_to_end(tmp_path, capsys):
    """Two epochs of ResNet-8 on the embedded sample: the loss falls and every output is usable."""
    metrics = train(_config(tmp_path))
    out = tmp_path / "run"
    rows = read_history(out / rundir.HISTORY)
    assert [r["epoch"] for r in rows] == [0, 1]
    assert rows[1]["loss"] < rows[0]["loss"]
    assert {"lr", "train_seconds", "images_per_second", "val_accuracy"} <= set(rows[0])
    printed = capsys.readouterr().out.splitlines()
    lines = [line for line in printed if line.startswith("epoch ")]
    assert len(lines) == 2 and "test err" in lines[0]  # one line per epoch off a terminal
    # The demo recipe's 30 epochs squeezed into 2: said once, before the first epoch.
    assert printed[0] == (
        "recipe 'demo' compressed to 2 epochs (its full length: 30 epochs): lr 0.0391, "
        "0.00391 from epoch 1, 0.000391 from epoch 1.5"
    )

    saved = json.loads((out / rundir.METRICS).read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert saved["epochs"] == 2 and saved["iterations"] == 40 and saved["global_batch"] == 50
    assert saved["final_test_error"] == pytest.approx(1 - rows[1]["val_accuracy"])
    assert saved["best_test_error"] == pytest.approx(min(1 - r["val_accuracy"] for r in rows))
    assert saved["images_per_second"] > 0 and saved["wall_time_s"] > 0
    assert saved["versions"]["keras"] == keras.__version__
    assert saved["config"]["schedule"]["peak_lr"] == pytest.approx(0.1 * 50 / 128)
    # Where the images came from: not tfds, the default source of the real datasets.
    assert saved["config"]["data_source"] is None
    assert saved["config"]["data"]["source"] == (
        "embedded sample (keras_preact/datasets/cifar10_sample.npz)"
    )
    assert (out / rundir.CURVES).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((out / rundir.TENSORBOARD).rglob("events.out.tfevents.*"))
    assert not (out / rundir.BACKUP).exists()

    # best.keras is self-contained: raw pixels in, its test accuracy is the recorded best.
    sample = load_sample()
    best = keras_preact.load_model(out / rundir.BEST)
    probabilities = best.predict(sample.x_test.astype("float32"), batch_size=100, verbose=0)
    assert probabilities.shape == (300, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == sample.y_test))
    assert 1 - accuracy == pytest.approx(saved["best_test_error"], abs=1 / 300 + 1e-6)
    assert keras_preact.load_model(out / rundir.LAST).count_params() == best.count_params()

    # The same command again: refused, and nothing of the finished run changes.
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(UserError, match="already holds a finished run"):
        train(_config(tmp_path))
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_tfds_mock_data_run(tmp_path):
    """The tfds source under tfds.testing.mock_data trains end to end (random images, CIFAR-10 shape)."""
    data_dir = tmp_path / "tfds"
    builder = tfds.builder("cifar10", data_dir=str(data_dir))
    builder.data_path.mkdir(parents=True)
    builder.info.write_to_directory(builder.data_path)
    config = _config(
        tmp_path,
        dataset="cifar10",
        data_dir=str(data_dir),
        recipe_overrides={"epochs": 2, "batch_size": 32},
        augment=False,
    )
    with tfds.testing.mock_data(num_examples=128, data_dir=str(data_dir)):
        metrics = train(config)
    rows = read_history(tmp_path / "run" / rundir.HISTORY)
    assert len(rows) == 2 and rows[1]["loss"] < rows[0]["loss"]
    assert metrics["config"]["data"] == {
        "source": f"tfds cifar10 in {builder.data_dir}",
        "train_examples": 128,
        "test_examples": 128,
        "classes": 10,
    }
    assert metrics["config"]["data_source"] == "tfds"  # the default, spelled out
    assert metrics["config"]["model_options"] == {}


def test_prepare_gives_the_compiled_model_and_data_without_training(tmp_path):
    prepared = prepare(
        _config(tmp_path, recipe_overrides={"batch_size": 100, "label_smoothing": 0.1})
    )
    assert prepared.steps_per_epoch == 10 and prepared.model.optimizer is not None
    x, y = next(iter(prepared.train_dataset()))
    assert x.shape == (100, 32, 32, 3) and y.shape == (100, 10)  # one-hot for label smoothing
    assert prepared.model.get_layer("preprocess") is not None
    assert int(prepared.model.optimizer.iterations) == 0
    assert not (tmp_path / "run").exists()

    # In-memory images instead of a named dataset (what benchmarks on their own subsets use).
    from training.data.cifar.arrays import make_arrays

    sample = load_sample()
    arrays = make_arrays(
        "cifar10",
        sample.x_train[:400],
        sample.y_train[:400],
        sample.x_test[:100],
        sample.y_test[:100],
        sample.label_names,
        origin="test",
    )
    small = prepare(_config(tmp_path, recipe_overrides={"batch_size": 100}), arrays=arrays)
    assert small.steps_per_epoch == 4 and small.schedule.total_steps == 4 * 30


def test_check_resolves_every_choice_once(tmp_path, monkeypatch):
    """``check`` resolves the model and the strategy; ``prepare`` builds from what it resolved and
    interprets neither string again."""
    from training.run import pipeline, strategy

    resolved = pipeline.check(_config(tmp_path, model="ResNet110V1"))
    assert resolved.model is keras_preact.MODELS["resnet110v1"] and resolved.model.paper_warmup
    assert resolved.model_options == {} and resolved.paper_error is None  # not on cifar10
    assert isinstance(resolved.strategy, strategy.StrategyPlan)
    cifar10 = pipeline.check(_config(tmp_path, dataset="cifar10", model="resnet110v1"))
    assert cifar10.paper_error == 6.43
    wider = pipeline.check(
        _config(tmp_path, dataset="cifar10", model_options={"unit": "basic", "width_multiplier": 2})
    )
    assert wider.model.unit == "basic" and wider.model_options == {"width_multiplier": 2}
    assert wider.paper_error is None  # not the network the paper measured

    resolved = pipeline.check(_config(tmp_path, recipe_overrides={"batch_size": 100}))

    def again(*args, **kwargs):
        raise AssertionError("resolved twice")

    monkeypatch.setattr(keras_preact, "resolve_model", again)
    monkeypatch.setattr(strategy, "check", again)
    prepared = prepare(resolved)
    assert prepared.resolved is resolved and prepared.model.name == "resnet8v1"
    assert prepared.schedule.gated_lr is None  # ResNet-8: no paper warm-up


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        cifar.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    parser = cifar.build_parser()
    for action in parser._actions:
        for option in action.option_strings:
            assert option in text
        if action.option_strings and action.dest != "help":
            assert action.help, f"{action.option_strings} has no help"
    for needle in ("examples:", "lr x batch/128", "metrics.json", "KERAS_BACKEND=jax", "TF_CONFIG"):
        assert needle in text


@pytest.mark.parametrize(
    ("command", "bad"),
    [
        ("training.cifar", ["--lr", "inf"]),
        ("training.images", ["--data", "x", "--val-split", "nan"]),
        ("training.evaluate", ["--model", "m.keras", "--data", "x", "--batch-size", "two"]),
        ("training.tune", ["--lr-range", "0.1,inf"]),
        ("training.reproduce", ["degradation", "--seed", "one"]),
    ],
)
def test_help_and_usage_errors_answer_without_tensorflow(command, bad):
    """``--help`` and a usage error import neither Keras nor TensorFlow (they take seconds), nor
    any of keras_preact but its standard-library ``keras_preact.command_line`` and
    ``keras_preact.native_logs`` and the model catalogue
    (plain data, which ``import keras_preact`` reads)."""
    for args, code in ((["--help"], 0), (bad, 2)):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", command, *args],
            cwd=ROOT,
            env=env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == code, result.stderr[-2000:]
        imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
        assert not {"tensorflow", "keras", "jax"} & imported, args
        assert {m for m in imported if m.startswith("keras_preact")} <= {
            "keras_preact",
            "keras_preact.catalogue",
            "keras_preact.command_line",
            "keras_preact.native_logs",
        }, args
        if code == 0:
            assert "--native-logs" in result.stdout
    assert "examples:" not in result.stdout
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"error: argument {bad[-2]}: ") and last.endswith(
        f"(see python -m {command} --help)"
    )


@pytest.mark.parametrize(
    ("command", "holder", "name"),
    [
        ("cifar", "options", "MODEL_NAMES"),
        ("cifar", "options", "DATASETS"),
        ("cifar", "options", "RECIPES"),
        ("cifar", "options", "SCHEDULES"),
        ("cifar", "options", "GATED_WARMUP_MODES"),
        ("cifar", "options", "STRATEGIES"),
        ("cifar", "options", "JIT_MODES"),
        ("cifar", "options", "PRECISIONS"),
        ("cifar", "options", "VERBOSITY"),
        ("images", "options", "IMAGE_RECIPES"),
        ("images", "options", "AUGMENTATIONS"),
        ("images", "options", "FREEZE_STAGES"),
        ("evaluate", "evaluate", "PROTOCOLS"),
        ("tune", "tune", "TUNERS"),
        ("reproduce", "reproduce", "VERBOSITY"),
    ],
)
def test_help_lists_the_choices_of_the_catalogue(command, holder, name, monkeypatch, capsys):
    """The choices ``--help`` lists are read from ``training.choices`` and ``keras_preact.catalogue``
    when the parser is built, not written out again: a new choice shows up in the help."""
    module = importlib.import_module(f"training.{command}")
    owner = importlib.import_module(f"training.{holder}")
    known = getattr(owner, name)
    new = (
        {**known, "brand_new_choice": "new"}
        if isinstance(known, dict)
        else (*known, "brand_new_choice")
    )
    monkeypatch.setattr(owner, name, new)
    with pytest.raises(SystemExit):
        module.main(["--help"])
    assert "brand_new_choice" in capsys.readouterr().out


def test_the_recipe_choices_are_the_recipes_defined():
    """The recipe names and descriptions --help lists (``training.choices``) are the recipes
    ``training.recipes`` defines, each the recipe it says (the tables pair names and recipes in order)."""
    from training import choices, recipes

    for names, table in (
        (choices.RECIPES, recipes.RECIPES),
        (choices.IMAGE_RECIPES, recipes.IMAGE_RECIPES),
    ):
        assert tuple(table) == tuple(names)
        assert [(r.name, r.description) for r in table.values()] == list(names.items())
    assert recipes.RECIPES["paper"].iterations == 64_000 and recipes.RECIPES["paper"].epochs is None
    assert recipes.RECIPES["fast"].schedule == "cosine" and recipes.RECIPES["demo"].epochs == 30
    assert recipes.IMAGE_RECIPES["paper"].lr_decay_at == (0.25, 0.5, 0.75)
    assert recipes.IMAGE_RECIPES["finetune"].backbone_lr_scale == 0.1


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_mixed_precision(tmp_path, precision):
    """Mixed precision: float16 gets a LossScaleOptimizer, both train, outputs stay float32."""
    from training.run.strategy import StrategyOptions

    config = _config(
        tmp_path,
        recipe_overrides={"batch_size": 100},
        strategy=StrategyOptions(mixed_precision=precision),
    )
    prepared = prepare(config)
    model = prepared.model
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (
        precision == "float16"
    )
    assert model.get_layer("stage1_unit1_conv1").compute_dtype == precision
    assert model.outputs[0].dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    # float16: the loss-scaled update; bfloat16: the fused batch norm on bfloat16 activations.
    data = prepared.train_dataset()
    history = model.fit(data, steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
