"""keras-preact's layers are Keras' own: option A is a frozen 0/1 convolution that subsamples and
appends zero channels exactly; the fused TensorFlow training step of the batch norms equals Keras'
own path; saved files load where keras_preact cannot be imported."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from model_helpers import one_batch

import keras_preact as kp
from keras_preact import tensorflow_kernels
from keras_preact.fused_batch_norm import use_fused_batch_norm, uses_fused_batch_norm
from keras_preact.units import LayerFactory


def BatchNormalization(fused: bool = True, **kwargs) -> keras.layers.BatchNormalization:
    """A Keras batch norm, trained with the fused kernel or with Keras' own path."""
    layer = keras.layers.BatchNormalization(**kwargs)
    use_fused_batch_norm(keras.Sequential([layer]), enabled=fused)
    return layer


@pytest.mark.parametrize(
    ("stride", "size", "channels", "out"), [(2, 8, 3, 6), (2, 7, 4, 4), (1, 5, 2, 5), (2, 6, 2, 8)]
)
def test_option_a_subsamples_and_appends_zero_channels(stride, size, channels, out):
    # channels_first: in tests/keras_preact/test_backends.py (TensorFlow has no NCHW CPU conv).
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, size, size, channels)).astype("float32")
    expected = np.zeros((2, -(-size // stride), -(-size // stride), out), "float32")
    expected[..., :channels] = x[:, ::stride, ::stride, :]
    inputs = keras.Input((size, size, channels))
    outputs = LayerFactory(weight_decay=1e-4).subsample_and_pad_channels(inputs, stride, out, "pad")
    model = keras.Model(inputs, outputs)
    np.testing.assert_array_equal(model.predict_on_batch(x), expected)  # bit-exact: 0/1 kernel
    layer = model.get_layer("pad")
    assert type(layer) is keras.layers.Conv2D and not layer.trainable and not layer.losses


def _run(layer: BatchNormalization, x: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """One training-mode call: outputs, gradients of a weighted sum, and the moving statistics."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y * weights)
    gx, ggamma, gbeta = tape.gradient(loss, [x, layer.gamma, layer.beta])
    return {
        "y": y.numpy(),
        "grad_x": gx.numpy(),
        "grad_gamma": ggamma.numpy(),
        "grad_beta": gbeta.numpy(),
        "moving_mean": layer.moving_mean.numpy(),
        "moving_variance": layer.moving_variance.numpy(),
    }


@pytest.mark.parametrize(("axis", "shape"), [(-1, (8, 6, 5, 4)), (1, (8, 4, 6, 5))])
def test_fused_training_step_equals_keras_batch_normalization(axis, shape):
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, shape).astype("float32")
    weights = rng.normal(size=shape).astype("float32")
    channels = shape[axis]
    gamma = rng.normal(1.0, 0.2, channels).astype("float32")
    beta = rng.normal(0.0, 1.0, channels).astype("float32")
    results = {}
    for fused in (True, False):
        layer = BatchNormalization(fused, axis=axis, momentum=0.9, epsilon=1e-5)
        layer.build(shape)
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
        results[fused] = _run(layer, x, weights)
    for key, expected in results[False].items():
        np.testing.assert_allclose(results[True][key], expected, rtol=1e-5, atol=2e-5, err_msg=key)
    # The moving variance is updated with the biased batch variance, as Keras does.
    axes = tuple(i for i in range(4) if i != axis % 4)
    np.testing.assert_allclose(
        results[True]["moving_variance"], 0.9 + 0.1 * x.var(axis=axes), rtol=1e-5
    )


def test_under_mixed_bfloat16_the_kernel_takes_bfloat16_and_matches_keras(monkeypatch):
    calls = _count_fused_calls(monkeypatch)
    keras.config.set_dtype_policy("mixed_bfloat16")
    rng = np.random.default_rng(1)
    shape = (8, 6, 5, 4)
    # Values bfloat16 holds exactly, so both paths see the same input.
    x = tf.cast(tf.constant(rng.normal(3.0, 2.0, shape).astype("float32")), tf.bfloat16)
    weights = tf.constant(rng.normal(size=shape).astype("float32"), tf.bfloat16)
    results = {}
    for fused in (True, False):
        layer = BatchNormalization(fused, momentum=0.9)
        results[fused] = _run(layer, x.numpy(), weights)
    assert calls == [tf.bfloat16]  # no float32 copy of the activations
    for key, expected in results[False].items():
        got = results[True][key]
        assert got.dtype == expected.dtype, key
        # bfloat16 has 8 significant bits: both paths round once, maybe to neighbouring values.
        np.testing.assert_allclose(
            got.astype("float32"), expected.astype("float32"), rtol=2e-2, atol=2e-2, err_msg=key
        )
    assert results[True]["y"].dtype == tf.bfloat16.as_numpy_dtype


def _count_fused_calls(monkeypatch) -> list:
    """Replaces the kernel with one that records the dtype of every input it is traced with."""
    calls: list = []
    kernel = tensorflow_kernels.fused_batch_norm_training

    def counting(*args):
        calls.append(args[0].dtype)
        return kernel(*args)

    monkeypatch.setattr(tensorflow_kernels, "fused_batch_norm_training", counting)
    return calls


def test_model_training_uses_the_fused_kernel_for_every_batch_norm(monkeypatch):
    calls = _count_fused_calls(monkeypatch)
    model = kp.ResNet20V1()
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 19  # the stem and two per unit
    assert all(uses_fused_batch_norm(layer) for layer in bns)
    x, y = one_batch(model, n=4)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.train_on_batch(x, y)
    assert len(calls) == len(bns)  # traced once per layer
    # Inference is Keras' own path: exported graphs do not contain the training kernel.
    calls.clear()
    model.predict_on_batch(x)
    assert calls == []


@pytest.mark.parametrize("case", ["synchronized", "frozen", "inference", "off"])
def test_keras_path_where_the_fused_kernel_does_not_apply(monkeypatch, case):
    calls = _count_fused_calls(monkeypatch)
    layer = BatchNormalization(case != "off", synchronized=case == "synchronized")
    layer.trainable = case != "frozen"
    layer(tf.ones((2, 3, 3, 4)), training=case != "inference")
    assert calls == []


PLAIN_KERAS_LOAD = """
import sys
sys.modules["keras_preact"] = None  # any attempt to import the package fails
import keras, numpy as np
sys.setrecursionlimit(20000)
model = keras.saving.load_model(sys.argv[1], safe_mode=True)
data = np.load(sys.argv[2])
np.testing.assert_allclose(model.predict_on_batch(data["x"]), data["probs"], atol=1e-6)
print(sorted({type(layer).__module__.split(".")[0] for layer in model.layers}))
"""


def test_saved_files_load_in_plain_keras_without_the_package(tmp_path):
    # One network with every kind of layer the builders use: option A's frozen convolution, the
    # strided convolutions' padding, the ImageNet stem's pools, v2 pre-activation units.
    model = kp.ResNet(18, "v2", "imagenet", projection="A", input_shape=(32, 32, 3), classes=10)
    x, y = one_batch(model, n=4)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.train_on_batch(x, y)  # moving statistics and weights that are not the initial ones
    path = tmp_path / "m.keras"
    model.save(path)
    np.savez(tmp_path / "out.npz", x=x, probs=model.predict_on_batch(x))
    result = subprocess.run(
        [sys.executable, "-c", PLAIN_KERAS_LOAD, str(path), str(tmp_path / "out.npz")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "['keras']"
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"Conv2D", "ZeroPadding2D", "MaxPooling2D", "BatchNormalization"} <= kinds
    assert model.get_layer("stage2_unit1_shortcut_pad").trainable is False
    # keras_preact.load_model gives the same network, training with the fused kernel again.
    loaded = kp.load_model(path)
    assert uses_fused_batch_norm(loaded.get_layer("post_bn"))
    np.testing.assert_allclose(loaded.predict_on_batch(x), model.predict_on_batch(x), atol=1e-6)
