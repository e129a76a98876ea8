"""The deepest networks (ResNet-1001 v2, ResNet-1202 v1) build, train, save and load.

A file of their own so that the test runner can run them beside the other model tests.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from model_helpers import DEEP, one_batch, train_step

import keras_preact as kp


@pytest.mark.slow
@pytest.mark.parametrize("name", DEEP)
def test_deepest_networks_build_train_save_and_load(name, tmp_path):
    """ResNet-1001/1202 exceed Python's default recursion limit inside Keras; they must still work."""
    model = kp.get_model(name)
    assert kp.model_stats(model).trainable_params / 1e6 == pytest.approx(
        kp.MODELS[name].paper_params_m, rel=0.02
    )
    x, y = one_batch(model)
    if name == "resnet1001v2":
        train_step(model, x, y)
    else:  # the same units as ResNet-20V1, only more of them: a forward pass is enough here
        assert np.isfinite(keras.ops.convert_to_numpy(model(x, training=True))).all()
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = kp.load_model(path, safe_mode=True, compile=False)
    assert len(loaded.layers) == len(model.layers)
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
