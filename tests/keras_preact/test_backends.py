"""The models are backend-agnostic: they train on JAX, and what JAX saves TensorFlow loads."""

from __future__ import annotations

import textwrap

import keras
import numpy as np
from model_helpers import run_on_jax

import keras_preact as kp

JAX_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import keras
    import keras_preact as kp

    assert keras.backend.backend() == "jax", keras.backend.backend()
    keras.utils.set_random_seed(0)
    out = sys.argv[1]
    for name, kwargs in [("v1", {}), ("v2", {"unit": "bottleneck", "version": "v2"})]:
        depth = 20 if name == "v1" else 11
        model = kp.ResNet(depth, preprocessing="cifar10", weight_decay=1e-4, **{"version": "v1", **kwargs})
        x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
        y = np.arange(8) % 10
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
        history = model.fit(x, y, epochs=2, batch_size=4, verbose=0)
        losses = history.history["loss"]
        assert all(np.isfinite(losses)), losses
        model.save(f"{out}/{name}.keras")
        np.savez(f"{out}/{name}.npz", x=x, probs=np.asarray(model(x, training=False)))
    # channels_first option-A shortcut (TensorFlow has no NCHW convolution on the CPU).
    from keras_preact.units import LayerFactory
    x = np.random.default_rng(1).normal(size=(2, 4, 7, 7)).astype("float32")
    expected = np.zeros((2, 8, 4, 4), "float32")
    expected[:, :4] = x[:, :, ::2, ::2]
    inputs = keras.Input((4, 7, 7))
    pad = LayerFactory(data_format="channels_first").subsample_and_pad_channels(inputs, 2, 8, "pad")
    np.testing.assert_array_equal(keras.Model(inputs, pad).predict_on_batch(x), expected)
    print("jax ok")
    """
)


def test_models_train_on_jax_and_load_in_tensorflow(tmp_path):
    run_on_jax(JAX_SCRIPT, tmp_path)
    for name in ("v1", "v2"):
        saved = np.load(tmp_path / f"{name}.npz")
        model = keras.saving.load_model(tmp_path / f"{name}.keras", safe_mode=True)
        probs = keras.ops.convert_to_numpy(model(saved["x"], training=False))
        np.testing.assert_allclose(probs, saved["probs"], atol=2e-5)
    assert kp.MODEL_NAMES  # the TensorFlow side imported the same package
