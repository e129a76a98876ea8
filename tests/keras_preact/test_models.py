"""Every model builds, runs forward and trains; heads, saving, weights files, mixed precision."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
from model_helpers import DEEP, one_batch, train_step

import keras_preact as kp


@pytest.mark.parametrize("name", [n for n in kp.MODEL_NAMES if n not in DEEP])
def test_every_factory_runs_forward_and_one_training_step(name):
    family = kp.MODELS[name].family
    # ImageNet nets at 64x64 keep the test fast; the architecture does not depend on the size.
    model = kp.get_model(
        name, input_shape=(64, 64, 3) if family == "imagenet" else None, classes=10
    )
    x, y = one_batch(model)
    probs = keras.ops.convert_to_numpy(model(x, training=False))
    assert probs.shape == (2, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    train_step(model, x, y)


@pytest.mark.parametrize("shortcut", kp.SHORTCUTS)
@pytest.mark.parametrize("placement", kp.PLACEMENTS)
def test_every_ablation_option_runs_forward_and_one_training_step(shortcut, placement):
    model = kp.ResNet(8, version="v1", shortcut=shortcut, placement=placement)
    x, y = one_batch(model, n=4)
    assert model(x).shape == (4, 10)
    train_step(model, x, y)


@pytest.mark.parametrize(
    ("name", "include_top", "pooling", "shape"),
    [
        ("resnet20v1", True, None, (2, 10)),
        ("resnet20v1", True, "avg", (2, 10)),
        ("resnet20v1", False, None, (2, 8, 8, 64)),
        ("resnet20v1", False, "avg", (2, 64)),
        ("resnet20v1", False, "max", (2, 64)),
        ("resnet164v2", False, None, (2, 8, 8, 256)),
        ("resnet164v2", False, "max", (2, 256)),
        ("resnet18v2", False, None, (2, 2, 2, 512)),
        ("resnet50v1", False, "avg", (2, 2048)),
    ],
)
def test_output_shapes_for_every_head(name, include_top, pooling, shape):
    kwargs = {"input_shape": (64, 64, 3)} if kp.MODELS[name].family == "imagenet" else {}
    model = kp.get_model(name, include_top=include_top, pooling=pooling, **kwargs)
    x, _ = one_batch(model)
    assert tuple(model(x).shape) == shape
    assert model.output_shape == (None, *shape[1:])


def test_input_tensor_and_custom_shape():
    inputs = keras.Input((40, 48, 1))
    model = kp.ResNet20V1(input_tensor=inputs, classes=3, classifier_activation=None)
    assert model.inputs[0] is inputs
    assert model(np.zeros((1, 40, 48, 1), "float32")).shape == (1, 3)


@pytest.mark.parametrize(
    "build",
    [
        lambda: kp.ResNet20V1(preprocessing="cifar10"),
        lambda: kp.ResNet(11, unit="bottleneck", classes=100),
        lambda: kp.ResNet(8, version="v1", shortcut="exclusive_gating", placement="bn_after_add"),
        lambda: kp.ResNet(8, version="v2", shortcut="dropout", placement="relu_preact"),
        lambda: kp.ResNet18V2(input_shape=(64, 64, 3), weight_decay=1e-4),
    ],
)
def test_keras_file_round_trip_gives_identical_outputs(build, tmp_path):
    model = build()
    x, y = one_batch(model, n=4)
    train_step(model, x, y)  # non-trivial BN statistics and weights
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(x, training=False)),
        keras.ops.convert_to_numpy(loaded(x, training=False)),
    )
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert len(loaded.losses) == len(model.losses)  # weight decay survives


def test_preprocessing_layer_standardises_raw_pixels():
    raw = kp.ResNet20V1(preprocessing="cifar10")
    plain = kp.ResNet20V1()
    plain.set_weights(raw.get_weights())
    pixels = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(raw(pixels)),
        keras.ops.convert_to_numpy(plain(kp.preprocess_input(pixels, "cifar10"))),
        atol=1e-6,
    )


def test_weight_decay_is_the_papers_sgd_decay():
    model = kp.ResNet20V1(weight_decay=1e-4)
    kernels = [
        layer.kernel for layer in model.layers if hasattr(layer, "kernel") and layer.trainable
    ]
    assert len(model.losses) == len(kernels) == 20  # 19 convs + the classifier (not option A's)
    expected = sum(float(keras.ops.sum(k**2)) for k in kernels) * 1e-4 / 2
    assert float(sum(model.losses)) == pytest.approx(expected, rel=1e-5)
    assert not kp.ResNet20V1().losses


def test_output_is_float32_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = kp.ResNet20V1()
    assert model.get_layer("stage1_unit1_conv1").compute_dtype == "bfloat16"
    assert model.output.dtype == "float32"
    out = model(np.zeros((2, 32, 32, 3), "float32"))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


def test_local_weights_file_is_loaded(tmp_path):
    source = kp.ResNet20V1(classes=5)
    x, y = one_batch(source)
    train_step(source, x, y)
    source.save_weights(tmp_path / "w.weights.h5")
    source.save(tmp_path / "m.keras")
    expected = keras.ops.convert_to_numpy(source(x))
    for path in (tmp_path / "w.weights.h5", tmp_path / "m.keras"):
        model = kp.ResNet20V1(classes=5, weights=str(path))
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x)), expected)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match=r"does not fit"):
            kp.ResNet32V1(classes=5, weights=str(tmp_path / "w.weights.h5"))
    assert not caught  # the one error, not a warning per layer before it
    with pytest.raises(ValueError, match=r"does not fit"):
        kp.ResNet20V1(classes=7, weights=str(tmp_path / "m.keras"))
