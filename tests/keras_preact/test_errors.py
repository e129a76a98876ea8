"""Bad arguments raise ValueError naming the bad value and what is allowed."""

from __future__ import annotations

import keras
import pytest

import keras_preact as kp


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: kp.ResNet(21, version="v1"), r"6n\+2 \(8, 14, 20, 26, 32, ...\), got 21"),
        (lambda: kp.ResNet(111, unit="bottleneck"), r"9n\+2 .*got 111"),
        (lambda: kp.ResNet(2), r"6n\+2 .*got 2"),
        (lambda: kp.ResNet(0), r"positive integer, got 0"),
        (lambda: kp.ResNet(20.0), r"positive integer, got 20.0"),
        (lambda: kp.ResNet(42, family="imagenet"), r"18, 34, 50, 101, 152 or 200, got 42"),
        (
            lambda: kp.ResNet(50, family="imagenet", unit="basic"),
            r"bottleneck units, got unit='basic'",
        ),
        (lambda: kp.ResNet(20, unit="wide"), r"unknown unit 'wide'.*'basic', 'bottleneck'"),
        (lambda: kp.ResNet(20, version="v3"), r"unknown version 'v3'.*'v1', 'v2'"),
        (lambda: kp.ResNet(20, family="mnist"), r"unknown family 'mnist'.*'cifar', 'imagenet'"),
        (lambda: kp.ResNet(20, shortcut="gated"), r"unknown shortcut 'gated'.*'exclusive_gating'"),
        (lambda: kp.ResNet(20, placement="post"), r"unknown placement 'post'.*'full_preact'"),
        (lambda: kp.ResNet(20, projection="D"), r"unknown projection 'D'.*'A', 'B', 'C'"),
        (lambda: kp.ResNet(20, bottleneck_stride="7x7"), r"unknown bottleneck_stride '7x7'"),
        (lambda: kp.ResNet(20, shortcut_scale=1.5), r"shortcut_scale must be .*got 1.5"),
        (lambda: kp.ResNet(20, shortcut_dropout=-0.1), r"shortcut_dropout must be .*got -0.1"),
        (lambda: kp.ResNet(20, weight_decay=-1e-4), r"weight_decay must be .*got -0.0001"),
        (lambda: kp.ResNet(20, width_multiplier=0), r"width_multiplier must be .*got 0"),
        (lambda: kp.ResNet(20, kernel_initializer="bogus"), r"unknown kernel_initializer 'bogus'"),
        (lambda: kp.ResNet20V1(input_shape=(4, 4, 3)), r"\(4, 4, 3\) is too small.*>= 8"),
        (lambda: kp.ResNet50V1(input_shape=(16, 16, 3)), r"\(16, 16, 3\) is too small.*>= 32"),
        (lambda: kp.ResNet20V1(input_shape=(32, 32)), r"3 positive integers.*got \(32, 32\)"),
        (
            lambda: kp.ResNet20V1(input_shape=(32, 32, 1), preprocessing="cifar10"),
            r"preprocessing='cifar10' standardises 3 \(RGB\) channels, but the input has 1",
        ),
        (lambda: kp.ResNet(20, gate_bias=float("nan")), r"gate_bias must be a finite number.*nan"),
        (lambda: kp.ResNet(20, bn_epsilon=float("inf")), r"bn_epsilon must be a finite .*inf"),
        (lambda: kp.ResNet(20, weight_decay=float("nan")), r"weight_decay must be a finite .*nan"),
        (lambda: kp.ResNet20V1(input_shape=(32, -1, 3)), r"got \(32, -1, 3\)"),
        (lambda: kp.ResNet20V1(input_shape="32x32"), r"got '32x32'"),
        (lambda: kp.ResNet20V1(classes=0), r"classes must be an integer >= 1, got 0"),
        (lambda: kp.ResNet20V1(classes=2.5), r"got 2.5"),
        (lambda: kp.ResNet20V1(pooling="sum"), r"unknown pooling 'sum'.*None, 'avg', 'max'"),
        (
            lambda: kp.ResNet20V1(include_top=True, pooling="max"),
            r"include_top=True .*pooling='max'",
        ),
        (lambda: kp.ResNet20V1(include_top="yes"), r"include_top must be True or False, got 'yes'"),
        (
            lambda: kp.ResNet20V1(classifier_activation="softmaxx"),
            r"classifier_activation 'softmaxx'",
        ),
        (
            lambda: kp.ResNet20V1(weights="imagenet"),
            r"no published imagenet weights hold resnet20v1; named weights exist for: resnet18v1",
        ),
        (
            lambda: kp.ResNet20V1(weights="http://x/r20.th"),
            r"weights='http://x/r20.th': keras-preact fetches only the published weights it names",
        ),
        (lambda: kp.ResNet20V1(weights="/no/such/file.weights.h5"), r"not found: '/no/such/file"),
        (
            lambda: kp.ResNet20V1(weights=3),
            r"weights must be None, a name of published weights.*got 3",
        ),
        (lambda: kp.ResNet20V1(preprocessing="mnist"), r"unknown preprocessing 'mnist'.*'cifar10'"),
        (lambda: kp.ResNet20V1(name=""), r"name must be a non-empty string"),
        (lambda: kp.ResNet20V1(depth=32), r"ResNet20V1 fixes depth"),
        (lambda: kp.ResNet20V1(input_tensor=[1, 2]), r"input_tensor must be a Keras tensor"),
        (
            lambda: kp.get_model("resnet21v1"),
            r"unknown model 'resnet21v1': CIFAR ResNets with basic units have depth 6n\+2",
        ),
        (
            lambda: kp.get_model("resnet20"),
            r"unknown model 'resnet20'; expected one of resnet20v1, .*plain<DEPTH>v<1\|2>",
        ),
        (lambda: kp.preprocess_input([0, 0, 0], "svhn"), r"unknown preprocessing 'svhn'"),
    ],
)
def test_bad_arguments_raise_a_clear_value_error(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_a_file_that_is_not_a_weights_file_is_rejected(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not weights")
    with pytest.raises(ValueError, match=r"is neither a Keras .weights.h5/.keras file nor a"):
        kp.ResNet20V1(weights=str(bad))
    corrupt = tmp_path / "corrupt.weights.h5"
    corrupt.write_bytes(b"\x89HDF\r\n garbage")
    with pytest.raises(ValueError, match=r"does not fit resnet20v1"):
        kp.ResNet20V1(weights=str(corrupt))
    corrupt_model = tmp_path / "corrupt.keras"
    corrupt_model.write_bytes(b"PK garbage")
    with pytest.raises(ValueError, match=r"corrupt.keras' is not a .keras model file"):
        kp.ResNet20V1(weights=str(corrupt_model))
    truncated = tmp_path / "truncated.keras"
    kp.ResNet20V1().save(tmp_path / "whole.keras")
    truncated.write_bytes((tmp_path / "whole.keras").read_bytes()[:-2000])
    with pytest.raises(ValueError, match=r"truncated.keras' is not a .keras model file"):
        kp.ResNet20V1(weights=str(truncated))


def test_validation_happens_before_any_layer_is_built():
    keras.backend.clear_session()
    with pytest.raises(ValueError):
        kp.ResNet1001V2(classes=0)
    # No layer was created (the name counter of Conv2D would have advanced).
    assert keras.layers.Conv2D(1, 1).name == "conv2d"


def test_a_bad_model_file_says_what_is_wrong(tmp_path):
    """``load_model`` and ``weights=`` name what is wrong with a file that exists: never
    "File not found", never a KeyError; a folder is said to be one."""
    import zipfile

    kp.ResNet20V1().save(tmp_path / "whole.keras")
    whole = (tmp_path / "whole.keras").read_bytes()
    (tmp_path / "text.keras").write_text("a model, once\n")
    (tmp_path / "empty.keras").write_bytes(b"")
    (tmp_path / "truncated.keras").write_bytes(whole[: len(whole) // 2])
    with zipfile.ZipFile(tmp_path / "photos.keras", "w") as z:
        z.writestr("cat.jpg", b"...")
    (tmp_path / "folder.keras").mkdir()
    (tmp_path / "folder.weights.h5").mkdir()
    cases = {
        "text.keras": "not a zip archive",
        "empty.keras": "the file is empty",
        "truncated.keras": "not a zip archive",
        "photos.keras": "a zip archive without config.json",
        "folder.keras": "is a directory",
    }
    for name, problem in cases.items():
        path = tmp_path / name
        for load in (kp.load_model, lambda p: kp.ResNet20V1(weights=p)):
            with pytest.raises(ValueError) as e:
                load(path)
            message = str(e.value)
            assert "\n" not in message and repr(str(path)) in message, message
            assert problem in message and "not found" not in message, message
    with pytest.raises(ValueError, match=r"folder\.weights\.h5' is a directory"):
        kp.ResNet20V1(weights=tmp_path / "folder.weights.h5")
    with pytest.raises(ValueError, match=r"model file not found: '/no/such\.keras'"):
        kp.load_model("/no/such.keras")


def test_weights_of_another_depth_are_refused_in_one_line(tmp_path):
    kp.get_model("resnet32v1").save_weights(tmp_path / "resnet32v1.weights.h5")
    with pytest.raises(ValueError) as e:
        kp.ResNet20V1(weights=tmp_path / "resnet32v1.weights.h5")
    message = str(e.value)
    assert "\n" not in message and len(message) < 400, message
    assert "does not fit resnet20v1: " in message
    assert "the first stage2_unit1_conv1 with shape (3, 3, 16, 16) in the file, (3, 3, 16, 32)" in (
        message
    )


def test_own_weights_with_nan_and_files_that_are_not_files_are_refused(tmp_path):
    """keras-preact's own .weights.h5 and .keras files (say of a run that diverged) holding NaN
    are refused naming the layer; a device or a pipe is said not to be a file, not "not found"."""
    import os

    import numpy as np

    from keras_preact.convert import read_checkpoint

    model = kp.ResNet20V1()
    kernel = model.get_layer("stage2_unit1_conv1").kernel
    kernel.assign(np.where(np.arange(kernel.shape[-1]) == 3, np.nan, kernel.numpy()))
    model.save_weights(tmp_path / "diverged.weights.h5")
    model.save(tmp_path / "diverged.keras")
    for name in ("diverged.weights.h5", "diverged.keras"):
        with pytest.raises(ValueError) as e:
            kp.ResNet20V1(weights=tmp_path / name)
        message = str(e.value)
        assert "\n" not in message and repr(str(tmp_path / name)) in message, message
        assert "stage2_unit1_conv1/kernel has 144 NaN or infinite values" in message, message
    os.mkfifo(tmp_path / "pipe.pth")
    for path in ("/dev/zero", str(tmp_path / "pipe.pth")):
        with pytest.raises(ValueError, match=f"weights={path!r} is not a regular file"):
            kp.ResNet20V1(weights=path)
        with pytest.raises(ValueError, match=f"checkpoint {path!r} is not a regular file"):
            read_checkpoint(path)
