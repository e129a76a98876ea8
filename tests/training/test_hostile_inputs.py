"""Hostile input to the training commands: symlink loops, one-class folders, class names that
break labels.txt, models without input normalisation, reproduce's table files, misleading
messages, the recipe summary line, and other shapes of the same mistakes. Each case: one
``error:`` line (exit 2) and nothing written, or the right result."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from image_helpers import write_folder

from keras_preact.command_line import UserError
from training.data.images.folder import scan, scan_eval


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("images") / "photos")


@pytest.fixture
def copy(folder, tmp_path):
    """A copy of the folder this test may spoil."""
    return shutil.copytree(folder, tmp_path / "photos")


def _error(call) -> str:
    with pytest.raises(UserError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------
# The image-folder walk


def test_symlink_loops_are_visited_once_and_said(copy, tmp_path):
    os.symlink(copy / "train", copy / "train" / "cat" / "loop")  # back to train/
    os.symlink(copy / "train" / "dog", copy / "train" / "cat" / "dogs")  # another class
    os.symlink(copy / "val", copy / "val" / "dog" / "up")
    # A link to images elsewhere is followed: users symlink their data.
    extra = tmp_path / "more-cats"
    shutil.copytree(copy / "val" / "cat", extra)
    os.symlink(extra, copy / "train" / "cat" / "more")
    found = scan(copy)
    assert len(found.train) == 62 and len(found.val) == 20
    assert np.bincount(found.train.labels).tolist() == [6, 6, 6, 8, 6, 6, 6, 6, 6, 6]
    cat = found.class_names.index("cat")
    for path, label in zip(found.train.files, found.train.labels, strict=True):
        assert (label == cat) == ("/train/cat/" in path), path
    summary = found.summary()
    assert "skipped 3 linked folders already in the scan" in summary
    assert "train/cat/loop" in summary and "train/cat/dogs" in summary
    evaluated = scan_eval(copy)
    assert len(evaluated.val) == 20
    assert "val/dog/up" in evaluated.summary()


def test_one_class_is_refused(copy):
    for name in os.listdir(copy / "train"):
        if name != "cat":
            shutil.rmtree(copy / "train" / name)
            shutil.rmtree(copy / "val" / name)
    assert "a classifier needs at least two classes" in _error(lambda: scan(copy))


@pytest.mark.parametrize("name", ["two\nlines", "tab\tcat", " cat", "cat ", "cr\rcat", "x\u2028y"])
def test_class_names_that_break_labels_txt_are_refused(copy, name):
    shutil.copytree(copy / "train" / "cat", copy / "train" / name)
    message = _error(lambda: scan(copy))
    assert repr(f"train/{name}") in message and "labels.txt" in message


def test_class_names_differing_only_in_case_are_refused(copy):
    shutil.copytree(copy / "train" / "cat", copy / "train" / "Cat")
    assert "differ only in case: Cat, cat" in _error(lambda: scan(copy))


def test_files_beside_the_class_folders_are_said(copy):
    shutil.copy(next((copy / "train" / "cat").iterdir()), copy / "train" / "stray.jpg")
    (copy / "train" / "unicorn").write_text("a class folder that is a file")
    found = scan(copy)
    assert len(found.train) == 60
    assert "left out 2 files outside the class folders (train/stray.jpg, train/unicorn)" in (
        found.summary()
    )


# ---------------------------------------------------------------------------------------------
# Networks without their own input normalisation (training.images --weights, training.evaluate)


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    """The same ResNet-8 weights twice, 32x32, 10 classes: with ImageNet's ``preprocess`` layer
    (``normalised.keras``) and without one (``raw.keras``, which expects normalised input)."""
    import keras

    import keras_preact

    keras.utils.set_random_seed(0)
    normalised = keras_preact.ResNet(
        8, "v1", input_shape=(32, 32, 3), classes=10, preprocessing="imagenet"
    )
    raw = keras_preact.ResNet(8, "v1", input_shape=(32, 32, 3), classes=10)
    raw.set_weights(normalised.get_weights())
    folder = tmp_path_factory.mktemp("networks")
    normalised.save(folder / "normalised.keras")
    raw.save(folder / "raw.keras")
    return folder


@pytest.mark.parametrize(
    ("network", "extra", "expected"),
    [
        ("raw", [], "model 'raw.keras' has no 'preprocess' layer, so its input normalisation is"),
        ("normalised", ["--preprocessing", "imagenet"], "would do it twice"),
        ("raw", ["--preprocessing", "imagenet_vgg"], "unknown --preprocessing 'imagenet_vgg'"),
        (None, ["--preprocessing", "imagenet"], "--preprocessing applies to the network of"),
    ],
)
def test_finetuning_a_network_without_its_normalisation_is_refused(
    folder, networks, tmp_path, capsys, network, extra, expected
):
    from training_helpers import main_error_line

    from training import images

    out = tmp_path / "run"
    argv = ["--data", str(folder), "--recipe", "finetune", "--output", str(out), *extra]
    if network:
        argv += ["--weights", str(networks / f"{network}.keras")]
    else:
        argv += ["--model", "resnet8v1", "--recipe", "paper"]
    line = main_error_line(images.main, argv, capsys)
    assert expected in line, line
    if network == "raw" and not extra:
        assert "--preprocessing cifar10|cifar100|imagenet" in line and "none" in line
    assert not out.exists()


def test_finetuning_with_preprocessing_puts_it_in_front(networks):
    import keras

    from keras_preact.preprocessing import preprocess_input
    from training.run import finetune

    raw = keras.saving.load_model(networks / "raw.keras")
    model = finetune.from_file(
        str(networks / "raw.keras"),
        classes=3,
        input_shape=(32, 32, 3),
        weight_decay=0,
        normalization="imagenet",
    )
    assert model.layers[1].name == "preprocess"
    pixels = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    features = keras.Model(model.inputs, model.get_layer("avg_pool").output)
    expected = keras.Model(raw.inputs, raw.get_layer("avg_pool").output)
    np.testing.assert_allclose(
        features.predict_on_batch(pixels),
        expected.predict_on_batch(preprocess_input(pixels, "imagenet")),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.slow
def test_a_run_fine_tunes_a_network_without_its_normalisation(folder, networks, tmp_path):
    """--preprocessing imagenet: the run trains, and its saved network takes raw pixels."""
    import keras

    from training import images

    out = tmp_path / "run"
    argv = ["--data", str(folder), "--weights", str(networks / "raw.keras"), "--recipe"]
    argv += ["finetune", "--preprocessing", "imagenet", "--epochs", "1", "--batch-size", "20"]
    argv += ["--output", str(out), "--verbose", "quiet", "--seed", "1"]
    assert images.main(argv) == 0
    best = keras.saving.load_model(out / "best.keras")
    assert best.layers[1].name == "preprocess"
    config = __import__("json").loads((out / "config.json").read_text())
    assert config["images"]["preprocessing"] == "imagenet"


def test_evaluate_needs_the_networks_normalisation(folder, networks, tmp_path, capsys):
    """Without a preprocess layer: refused in one line; with --preprocessing imagenet: exactly
    the errors of the same weights behind their own preprocess layer, for every protocol."""
    import json

    from training_helpers import main_error_line

    from training import evaluate

    raw = ["--model", str(networks / "raw.keras"), "--data", str(folder)]
    line = main_error_line(evaluate.main, raw, capsys)
    assert "model 'raw.keras' has no 'preprocess' layer" in line and "--preprocessing" in line
    twice = ["--model", str(networks / "normalised.keras"), "--data", str(folder)]
    line = main_error_line(evaluate.main, [*twice, "--preprocessing", "cifar10"], capsys)
    assert "would do it twice" in line
    for protocol in ("center", "multiscale"):
        results = {}
        for name, extra in (("raw", ["--preprocessing", "imagenet"]), ("normalised", [])):
            output = tmp_path / f"{name}-{protocol}.json"
            argv = ["--model", str(networks / f"{name}.keras"), "--data", str(folder)]
            argv += ["--protocol", protocol, "--output", str(output), *extra]
            assert evaluate.main(argv) == 0
            results[name] = json.loads(output.read_text())
        assert results["raw"]["preprocessing"] == "imagenet"
        assert results["normalised"]["preprocessing"] == "model"
        for key in ("top1_error", "top5_error", "images"):
            assert results["raw"][key] == results["normalised"][key], (protocol, key)


def test_evaluate_names_the_model_option_when_the_model_is_wrong(folder, tmp_path, capsys):
    from training_helpers import main_error_line

    from training import evaluate

    torch_file = tmp_path / "x.th"
    torch_file.write_bytes(b"\x80\x02not a keras file")
    text = tmp_path / "notes.keras"
    text.write_text("not a zip archive")
    for model, expected in (
        (torch_file, f"cannot load --model {torch_file}"),
        (text, f"--model {text} is not a .keras model file (a zip archive)"),
        (tmp_path, f"--model {tmp_path} is a folder, not a .keras model file"),
    ):
        line = main_error_line(
            evaluate.main, ["--model", str(model), "--data", str(folder)], capsys
        )
        assert expected in line and "--weights" not in line, line


@pytest.mark.parametrize(
    ("name", "spelled"),
    [("resnet20v2", "ResNet20V2"), ("RESNET8V1", "ResNet8V1"), ("plain26v1", "Plain26V1")],
)
def test_model_names_are_spelled_as_the_package_spells_them(name, spelled):
    from training.run import pipeline

    resolved = pipeline.check(pipeline.TrainConfig(model=name, dataset="cifar10-sample"))
    assert resolved.describe_model()["name"] == spelled  # metrics.json


# ---------------------------------------------------------------------------------------------
# The recipe summary line: the schedule that will run


def _note(recipe, images: int, family: str = "images") -> str | None:
    from training import recipes

    steps = images // recipe.batch_size
    schedule = recipes.plan(recipe, model=None, num_examples=images, steps_per_epoch=steps)
    return recipes.compression_note(recipe, schedule, family=family)


def test_the_summary_line_merges_decays_that_fall_on_one_step():
    from training import recipes

    recipe = recipes.get_recipe("paper", "images", epochs=1, batch_size=20)
    # 3 steps: the decays at 1/4, 1/2 and 3/4 fall on steps 1, 2 and 2.
    assert _note(recipe, 60) == (
        "recipe 'paper' compressed to 1 epoch (its full length: 120 epochs): lr 0.00781, "
        "0.000781 from epoch 0.333, 7.81e-06 from epoch 0.667"
    )
    # 1 step: two decays before it, the third after the end: one rate throughout.
    assert _note(recipe, 20) == (
        "recipe 'paper' compressed to 1 epoch (its full length: 120 epochs): lr 7.81e-05, constant"
    )


def test_the_quick_scale_says_its_length_and_constant_rate():
    from training import recipes
    from training.experiments import runs as campaign_lib
    from training.run import pipeline

    choices = campaign_lib.Choices(scale="quick")
    planned = campaign_lib.plan("degradation", choices, load_data=False)
    resolved = planned.selected[0].resolved
    schedule = campaign_lib.schedule(resolved)
    assert isinstance(resolved, pipeline.Resolved)
    assert recipes.compression_note(resolved.recipe, schedule) == (
        "recipe 'paper' compressed to 15 epochs: lr 0.0391, constant"
    )


# ---------------------------------------------------------------------------------------------
# training.reproduce: files that are not its own, options checked when listing


def _reproduce_error(argv, capsys) -> str:
    from training_helpers import main_error_line

    from training import reproduce

    return main_error_line(reproduce.main, argv, capsys)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--devices", "garbage"], "unknown device 'garbage'"),
        (["--devices", "cpu:0"], "--devices takes GPUs"),
        (["--devices", "0,gpu:0"], "--devices names GPU 0 twice"),
        (["--scale", "huge"], "unknown scale 'huge'"),
        (["--epochs", "-3"], "--epochs must be at least 1"),
    ],
)
def test_listing_checks_the_options_too(tmp_path, capsys, argv, expected):
    output = tmp_path / "out"
    line = _reproduce_error(["degradation", "--list", "--output", str(output), *argv], capsys)
    assert expected in line, line
    assert not output.exists()


def _tiny_experiment(monkeypatch):
    from training.experiments import papers as ex

    tiny = ex.Experiment(
        "tiny",
        "plain-8 against ResNet-8",
        "a test",
        runs=(
            ex.Run("plain8v1", "plain-8", "plain8v1"),
            ex.Run("resnet8v1", "ResNet-8", "resnet8v1", twin="plain8v1"),
        ),
        panels=(ex.Panel("plain", ("plain8v1",)), ex.Panel("ResNets", ("resnet8v1",))),
    )
    monkeypatch.setitem(ex.EXPERIMENTS, "tiny", tiny)


@pytest.mark.parametrize(
    ("files", "named"),
    [
        ({"table.md": "my own notes\n"}, "table.md"),
        ({"figure.png": "a photo"}, "figure.png"),
        ({"table.json": '{"experiment": "depth", "rows": []}'}, "table.json"),
        ({"table.json": "not json"}, "table.json"),
    ],
)
def test_table_files_that_are_not_its_own_are_never_overwritten(
    tmp_path, capsys, monkeypatch, files, named
):
    """Another experiment's table, or a file of the user's, in --output: refused before anything
    trains, and kept as it is."""
    _tiny_experiment(monkeypatch)
    output = tmp_path / "out"
    output.mkdir()
    for name, text in files.items():
        (output / name).write_text(text)
    argv = ["tiny", "--scale", "quick", "--epochs", "1", "--output", str(output)]
    line = _reproduce_error(argv, capsys)
    assert f"{output / named}" in line and "--overwrite" in line, line
    assert {p.name: p.read_text() for p in output.iterdir()} == files


def test_a_table_folder_in_the_way_is_refused(tmp_path, capsys, monkeypatch):
    _tiny_experiment(monkeypatch)
    output = tmp_path / "out"
    (output / "table.md").mkdir(parents=True)
    line = _reproduce_error(["tiny", "--scale", "quick", "--output", str(output)], capsys)
    assert f"{output / 'table.md'} is a folder" in line
    assert [p.name for p in output.iterdir()] == ["table.md"]


@pytest.mark.slow
def test_overwrite_replaces_the_table_files_and_its_own_are_redrawn(tmp_path, capsys, monkeypatch):
    import json

    from training import reproduce

    _tiny_experiment(monkeypatch)
    output = tmp_path / "out"
    output.mkdir()
    (output / "table.md").write_text("my own notes\n")
    argv = ["tiny", "--scale", "quick", "--epochs", "1", "--runs", "plain8v1"]
    argv += ["--output", str(output), "--verbose", "quiet"]
    assert reproduce.main([*argv, "--overwrite"]) == 0
    assert (output / "table.md").read_text().startswith("# tiny: plain-8 against ResNet-8")
    assert json.loads((output / "table.json").read_text())["experiment"] == "tiny"
    # Its own table: drawn again without --overwrite.
    (output / "figure.png").unlink()
    assert reproduce.main(argv) == 0
    assert (output / "figure.png").stat().st_size > 1000
    capsys.readouterr()


# ---------------------------------------------------------------------------------------------
# Other shapes of the same mistakes


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"epochs": 10**20}, "epochs must be at most 1000000"),
        ({"iterations": 10**30}, "iterations must be at most 2147483647"),
    ],
)
def test_absurd_training_lengths_are_refused(override, expected):
    from training import recipes

    with pytest.raises(UserError, match=expected):
        recipes.get_recipe("paper", **override)


def test_a_length_beyond_the_step_counter_is_refused():
    from training import recipes

    recipe = recipes.get_recipe("paper", "images", epochs=1_000_000, batch_size=1)
    with pytest.raises(UserError, match="steps: more than 2147483647"):
        recipes.plan(recipe, model=None, num_examples=10_000, steps_per_epoch=10_000)


def test_absurd_lengths_and_sizes_are_one_line_from_the_command(folder, tmp_path, capsys):
    from training_helpers import main_error_line

    from training import images

    out = tmp_path / "run"
    base = ["--data", str(folder), "--model", "resnet8v1", "--output", str(out)]
    for extra, expected in (
        (["--iterations", str(10**30), "--schedule", "cosine"], "iterations must be at most"),
        (["--image-size", "100000"], "--image-size must be at most 4096 pixels, got 100000"),
    ):
        assert expected in main_error_line(images.main, [*base, *extra], capsys)
        assert not out.exists()


def test_evaluate_with_a_batch_larger_than_the_images(folder, networks, tmp_path):
    import json

    from training import evaluate

    results = []
    for batch in ("32", str(10**11)):
        output = tmp_path / f"{batch}.json"
        argv = ["--model", str(networks / "normalised.keras"), "--data", str(folder)]
        assert evaluate.main([*argv, "--batch-size", batch, "--output", str(output)]) == 0
        results.append(json.loads(output.read_text()))
    assert results[0]["top1_error"] == results[1]["top1_error"]
    assert results[1]["images"] == 20


def test_evaluate_refuses_a_labels_file_naming_a_class_twice(folder, networks, tmp_path, capsys):
    from training_helpers import main_error_line

    from training import evaluate

    labels = tmp_path / "labels.txt"
    names = sorted(p.name for p in (folder / "val").iterdir())
    labels.write_text("\n".join([names[0], *names[:-1]]) + "\n")
    argv = ["--model", str(networks / "normalised.keras"), "--data", str(folder)]
    line = main_error_line(evaluate.main, [*argv, "--labels", str(labels)], capsys)
    assert f"--labels {labels} names {names[0]!r} twice" in line


@pytest.mark.timeout(60, method="thread")  # before: the scan waited on the pipe
def test_a_pipe_named_like_an_image_is_left_out_not_read(copy):
    os.mkfifo(copy / "train" / "cat" / "camera.jpg")  # reading it would wait for a writer
    found = scan(copy)
    assert len(found.train) == 60 and "train/cat/camera.jpg" in found.not_images
