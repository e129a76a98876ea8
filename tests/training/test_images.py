"""python -m training.images end to end on a real-image folder: the paper recipe trains and resumes,
a fine-tuned network is evaluated with every protocol and exported, bad folders are refused with one
line and nothing written, tfds imagenet2012 fails fast offline and trains on tfds' mock data, and two
CPU replicas and the JAX backend train."""

from __future__ import annotations

import json
import shutil
import time

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds
from image_helpers import add_bad_files, write_folder
from training_helpers import cli, error_line, main_error_line, metrics

import keras_preact
from keras_preact.command_line import UserError
from training import evaluate, images
from training.data.images import imagenet_tfds as tfds_imagenet
from training.data.images import options as image_options
from training.data.images.dataset import load
from training.data.images.options import ImageOptions
from training.run import callbacks
from training.run import run_folder as rundir
from training.run.pipeline import TrainConfig, prepare, train
from training.run.report import read_history


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("images") / "photos")


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    root = write_folder(tmp_path_factory.mktemp("images") / "mixed")
    add_bad_files(root)
    return root


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A saved network to fine-tune: ImageNet-style preprocessing, 32x32, 7 classes."""
    keras.utils.set_random_seed(0)
    model = keras_preact.ResNet(
        8, "v1", input_shape=(32, 32, 3), classes=7, preprocessing="imagenet"
    )
    path = tmp_path_factory.mktemp("pretrained") / "resnet8.keras"
    model.save(path)
    return path


def _paper(folder, out, **overrides) -> TrainConfig:
    fields = dict(
        model="resnet8v1",
        images=ImageOptions(data=str(folder), image_size=32),
        recipe="paper",
        recipe_overrides={"epochs": 2, "batch_size": 20},
        output=str(out),
        verbose="line",
        seed=5,
        backup_every=2,
    )
    fields.update(overrides)
    return TrainConfig(**fields)


def test_paper_recipe_trains_and_a_killed_run_resumes_to_the_same_weights(
    folder, tmp_path, monkeypatch, capsys
):
    reference = train(_paper(folder, tmp_path / "reference"))
    out = tmp_path / "run"
    assert (out.parent / "reference" / rundir.LABELS).read_text().split() == sorted(
        p.name for p in (folder / "train").iterdir()
    )
    saved = json.loads((tmp_path / "reference" / rundir.METRICS).read_text())
    assert saved["iterations"] == 6 and saved["config"]["data"]["image_size"] == 32
    assert saved["config"]["recipe_resolved"]["lr_decay_at"] == [0.25, 0.5, 0.75]
    assert saved["config"]["schedule"]["peak_lr"] == pytest.approx(0.05 * 20 / 128)

    save = callbacks.Backup.save

    def killed_after_step_4(self):
        save(self)
        if self.step == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(callbacks.Backup, "save", killed_after_step_4)
    with pytest.raises(KeyboardInterrupt):
        train(_paper(folder, out))
    monkeypatch.undo()
    assert not (out / rundir.METRICS).exists()
    capsys.readouterr()
    resumed = train(_paper(folder, out))
    assert f"resuming {out} at epoch 2, batch 2" in capsys.readouterr().out
    assert resumed["final_test_error"] == reference["final_test_error"]
    assert [r["epoch"] for r in read_history(out / rundir.HISTORY)] == [0, 1]
    ours = keras_preact.load_model(out / rundir.LAST).get_weights()
    theirs = keras_preact.load_model(tmp_path / "reference" / rundir.LAST).get_weights()
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
    model = keras_preact.load_model(out / rundir.BEST)
    assert tuple(model.inputs[0].shape) == (None, 32, 32, 3)
    assert model.get_layer("preprocess") is not None  # raw [0, 255] pixels in


def test_finetune_evaluate_every_protocol_and_export(bad_folder, pretrained, tmp_path, capsys):
    out = tmp_path / "finetuned"
    args = ["--data", str(bad_folder), "--weights", str(pretrained), "--recipe", "finetune"]
    args += ["--freeze", "stage1", "--epochs", "2", "--batch-size", "20", "--seed", "1"]
    args += ["--skip-bad-images", "--output", str(out), "--verbose", "line"]
    assert images.main(args) == 0
    printed = capsys.readouterr().out
    assert "skipped 2 undecodable images (train/cat/broken.jpg, val/dog/garbage.png)" in printed
    assert "left out 1 file that is not an image (train/dog/notes.txt)" in printed
    assert f"done: {out}: final validation error" in printed
    result = metrics(out)
    assert result["config"]["model"] == "resnet8" and result["config"]["data"]["classes"] == 10
    assert result["config"]["recipe_resolved"]["backbone_lr_scale"] == 0.1
    assert result["config"]["model_resolved"] == {"weights": str(pretrained)}
    assert result["config"]["data"]["image_size"] == 32  # the input size of --weights

    best = out / rundir.BEST
    errors = {}
    for protocol in ("center", "10crop", "multiscale"):
        report = tmp_path / f"{protocol}.json"
        argv = ["--model", str(best), "--data", str(bad_folder), "--protocol", protocol]
        assert (
            evaluate.main([*argv, "--skip-bad-images", "--per-class", "--output", str(report)]) == 0
        )
        written = json.loads(report.read_text())
        assert written["images"] == 20 and written["protocol"] == protocol
        assert sum(c["images"] for c in written["per_class"].values()) == 20
        assert written["skipped_images"] == ["val/dog/garbage.png"]
        errors[protocol] = written["top1_error"]
    # The centre protocol is the validation view training reported for best.keras.
    assert errors["center"] == pytest.approx(result["best_test_error"])
    assert capsys.readouterr().out.count("top-1 error") == 3

    from export.__main__ import main as export

    repository = tmp_path / "repository"
    argv = ["--model", str(best), "--output", str(repository), "--formats", "savedmodel"]
    argv += ["--quantize", "", "--labels", str(out / rundir.LABELS), "--num-images", "16"]
    assert export([*argv, "--latency-runs", "0"]) == 0
    printed = capsys.readouterr().out
    assert "exported 'resnet8v1' version 1" in printed and "savedmodel:serving_bytes" in printed
    assert (repository / "resnet8v1" / "1" / "saved_model.pb").is_file()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([], "2 images in {root} cannot be decoded: train/cat/broken.jpg, val/dog/garbage.png"),
        (["--val-split", "0.2"], "has a val/ folder: use it or --val-split, not both"),
        (["--freeze", "stage2"], "--freeze and --backbone-lr-scale apply to fine-tuning"),
        (["--augmentation", "mixup"], "unknown augmentation 'mixup'"),
        (["--manual-dir", "/x"], "--manual-dir applies to --data tfds:imagenet2012"),
        (["--recipe", "fast"], "unknown recipe 'fast': choose one of paper, finetune"),
        (["--image-size", "16"], "--image-size must be at least 32 pixels"),
        (["--weights", "missing.keras"], "--weights missing.keras: file not found"),
        (["--model-option", "bogus=1"], "unknown model option(s) bogus"),
        (["--model", "resnet51v1"], "resnet51v1"),
    ],
)
def test_bad_input_is_one_line_and_nothing_is_written(
    bad_folder, tmp_path, capsys, extra, expected
):
    out = tmp_path / "run"
    argv = ["--data", str(bad_folder), "--output", str(out), *extra]
    assert expected.format(root=bad_folder) in main_error_line(images.main, argv, capsys)
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            ["--protocol", "5crop"],
            "unknown protocol '5crop': choose one of center, 10crop, multiscale",
        ),
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--output", "{taken}"], "exists: choose a new file"),
        (["--output", "{taken}/errors.json"], "cannot write to --output"),
        (["--labels", "{missing}"], "file not found"),
        (["--model", "{missing}"], "file not found"),
    ],
)
def test_evaluate_refuses_bad_input_in_one_line(
    folder, pretrained, tmp_path, capsys, extra, expected
):
    taken = tmp_path / "taken.json"
    taken.write_text("{}")
    missing = tmp_path / "missing"
    argv = ["--model", str(pretrained), "--data", str(folder)]
    argv += [a.format(taken=taken, missing=missing) for a in extra]
    assert expected in main_error_line(evaluate.main, argv, capsys)
    assert [p.name for p in tmp_path.iterdir()] == ["taken.json"] and taken.read_text() == "{}"


def test_check_resolves_an_image_run_once(folder, pretrained, tmp_path, monkeypatch):
    """``pipeline.check`` resolves an image run's recipe (the image table), network, crop size
    and strategy; ``prepare`` builds from that, the input shape and preprocessing coming from the
    data, and interprets none of them again, for a new network and for a fine-tuned one."""
    from training.run import pipeline, strategy

    new = pipeline.check(_paper(folder, tmp_path / "new"))
    assert new.model.key == "resnet8v1" and new.images.image_size == 32
    assert new.recipe.lr_decay_at == (0.25, 0.5, 0.75) and new.paper_error is None
    tuned = pipeline.check(
        TrainConfig(
            model="resnet8",
            images=ImageOptions(data=str(folder), weights=str(pretrained)),
            recipe="finetune",
            recipe_overrides={"epochs": 1, "batch_size": 20},
        )
    )
    assert tuned.model is None and tuned.model_options == {}
    assert tuned.images.image_size == 32  # read once from the --weights file
    with pytest.raises(UserError, match="--model-option applies to new networks"):
        pipeline.check(
            TrainConfig(
                images=ImageOptions(data=str(folder), weights=str(pretrained)),
                model_options={"width_multiplier": 2},
            )
        )

    def again(*args, **kwargs):
        raise AssertionError("resolved twice")

    monkeypatch.setattr(keras_preact, "resolve_model", again)
    monkeypatch.setattr(strategy, "check", again)
    monkeypatch.setattr(image_options, "keras_input_size", again)
    monkeypatch.setattr(ImageOptions, "check", again)
    built = prepare(new)
    assert built.resolved is new and tuple(built.model.inputs[0].shape) == (None, 32, 32, 3)
    assert built.model.get_layer("preprocess") is not None
    finetuned = prepare(tuned)
    assert finetuned.model.get_layer("logits").units == 10
    assert tuple(finetuned.model.inputs[0].shape) == (None, 32, 32, 3)


def test_weights_and_model_are_not_both_given(pretrained, folder, capsys):
    argv = ["--data", str(folder), "--weights", str(pretrained), "--model", "resnet8v1"]
    assert "holds the network to fine-tune: drop --model" in main_error_line(
        images.main, argv, capsys
    )


def test_imagenet_without_its_archives_fails_at_once_without_downloading(tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("tfds was asked to download or prepare")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_download)
    started = time.monotonic()
    with pytest.raises(UserError) as error:
        load(ImageOptions("tfds:imagenet2012"), data_dir=str(tmp_path / "tfds"))
    assert time.monotonic() - started < 10
    message = str(error.value)
    manual = tmp_path / "tfds" / "downloads" / "manual"
    assert f"its manual folder {manual} lacks ILSVRC2012_img_train.tar and" in message
    assert "ILSVRC2012_img_val.tar" in message and "\n" not in message


def test_imagenet_from_tfds_mock_data_trains_and_evaluates(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    for name in tfds_imagenet.ARCHIVES:  # present, never read: tfds' preparation is mocked
        (manual / name).write_bytes(b"")
    config = TrainConfig(
        model="resnet8v1",
        images=ImageOptions("tfds:imagenet2012", image_size=32, manual_dir=str(manual)),
        recipe="paper",
        recipe_overrides={"epochs": 1, "batch_size": 8},
        seed=2,
        verbose="quiet",
    )
    with tfds.testing.mock_data(num_examples=24):
        prepared = prepare(config)
        source = prepared.source
        assert source.num_classes == 1000 and source.num_train == 24 and source.num_test == 24
        x, y = next(iter(prepared.train_dataset()))
        assert x.shape == (8, 32, 32, 3) and y.shape == (8,)
        history = prepared.model.fit(
            prepared.train_dataset(), steps_per_epoch=2, epochs=1, verbose=0, shuffle=False
        )
        assert np.isfinite(history.history["loss"]).all()
        from training.evaluation.protocols import probabilities

        probs, labels = probabilities(prepared.model, source.val, "10crop", 32, batch=8)
        assert probs.shape == (24, 1000) and labels.max() < 1000


@pytest.mark.slow
def test_two_cpu_replicas_train_on_images(folder, tmp_path):
    out = tmp_path / "mirrored"
    result = cli(
        "training.images",
        *["--data", str(folder), "--model", "resnet8v1", "--image-size", "32", "--epochs", "1"],
        *["--batch-size", "20", "--strategy", "mirrored", "--cpu-replicas", "2", "--seed", "1"],
        *["--output", str(out), "--verbose", "line"],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runtime = metrics(out)["config"]["runtime"]
    assert runtime["replicas"] == 2 and runtime["strategy"] == "mirrored"
    assert metrics(out)["iterations"] == 3


@pytest.mark.slow
def test_jax_trains_on_images_fed_by_tensorflow(folder, tmp_path):
    """Where TensorFlow is installed, its tf.data feed feeds the JAX backend."""
    out = tmp_path / "jax"
    result = cli(
        "training.images",
        *["--data", str(folder), "--model", "resnet8v1", "--image-size", "32", "--epochs", "1"],
        *["--batch-size", "20", "--seed", "1", "--output", str(out), "--verbose", "line"],
        KERAS_BACKEND="jax",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert metrics(out)["config"]["runtime"]["backend"] == "jax"
    assert "epoch 1/1" in result.stdout


def test_jax_without_tensorflow_says_the_feed_needs_it(folder, tmp_path, jax_without_tensorflow):
    out = tmp_path / "run"
    result = cli(
        "training.images", "--data", str(folder), "--output", str(out), **jax_without_tensorflow
    )
    assert "needs TensorFlow for its input pipeline" in error_line(result)
    assert not out.exists()
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_worker_sharded_feed_trains_through_the_multi_worker_loop(folder):
    """The loop of ``multi_worker`` takes the image feed as a function of each worker's input
    context (``distribute_datasets_from_function``); here one worker with one replica."""
    from training.run import multi_worker_fit as loop
    from training.run.strategy import StrategyOptions

    config = _paper(folder, "unused", strategy=StrategyOptions("mirrored"), verbose="quiet")
    prepared = prepare(config)
    strategy = prepared.runtime.strategy
    feed = lambda context: prepared.source.train_batches(  # noqa: E731
        prepared.recipe, seed=1, input_context=context
    )
    with prepared.runtime.scope():
        history = loop.fit(prepared.model, strategy, feed, epochs=1, steps_per_epoch=2, verbose=0)
    assert len(history.history["loss"]) == 1 and np.isfinite(history.history["loss"][0])


def test_tuner_holds_out_part_of_each_class_and_names_the_images_command(folder):
    from training import options as arguments
    from training import tune
    from training.experiments import search
    from training.run import pipeline

    args = tune.build_parser().parse_args(["--data", str(folder), "--image-size", "32"])
    base = arguments.train_config(args, model="resnet8v1")
    split = pipeline.load_data(base, log=lambda line: None).holdout(0.5)
    assert split.num_train == 30 and split.num_test == 30
    assert np.bincount(split.val.labels).tolist() == [3] * 10
    values = {"lr": 0.1, "weight_decay": 1e-4, "batch_size": 20, "model": "resnet8v1"}
    assert search.command(base, values) == (
        f"python -m training.images --data {folder} --model resnet8v1 --recipe paper "
        "--image-size 32 --lr 0.1 --weight-decay 0.0001 --batch-size 20"
    )


def test_tuner_trials_fine_tune_the_network_of_weights(folder, pretrained, tmp_path, capsys):
    """With --weights the trials choose the recipe's numbers, not a network: each one builds the
    --weights network with a new classifier; --models, --units and --widths are refused."""
    import keras_tuner as kt

    from training import options as arguments
    from training import recipes, tune
    from training.experiments import search
    from training.run import pipeline, strategy

    argv = ["--data", str(folder), "--weights", str(pretrained), "--recipe", "finetune"]
    resolved = pipeline.check(arguments.train_config(tune.build_parser().parse_args(argv)))
    assert resolved.model is None and resolved.images.image_size == 32
    arrays = pipeline.load_data(resolved, log=lambda line: None).holdout(0.5)
    space = search.SearchSpace(batch_sizes=(20,))
    runtime = strategy.create(resolved.strategy)
    hp = kt.HyperParameters()
    model = search.build_hypermodel(resolved, space, {}, runtime, arrays, seed=0).build(hp)
    assert set(hp.values) == {"lr", "weight_decay", "batch_size"}
    assert model.get_layer("logits").units == 10
    assert isinstance(model.optimizer, recipes.BackboneRateSGD)

    out = tmp_path / "search"
    for extra, expected in (
        (["--models", "resnet8v1"], "--models chooses new networks"),
        (["--widths", "1,2"], "--units and --widths choose new networks"),
    ):
        assert expected in main_error_line(tune.main, [*argv, *extra, "--output", str(out)], capsys)
    assert not out.exists()


@pytest.mark.parametrize("module", [images, evaluate])
def test_help_documents_every_option(module, capsys):
    with pytest.raises(SystemExit) as exit_status:
        module.main(["--help"])
    assert exit_status.value.code == 0
    text = capsys.readouterr().out
    for action in module.build_parser()._actions:
        for option in action.option_strings:
            assert option in text
        if action.option_strings and action.dest != "help":
            assert action.help, f"{action.option_strings} has no help"
    assert "examples:" in text and "--data" in text
