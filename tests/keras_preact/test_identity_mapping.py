"""The v2 paper's argument (section 3), small and fast: with identity shortcuts the gradient of a
deep unit reaches the first unit undiminished (x_L = x_l + sum F), with constant scaling it does
not (x_L = λ^(L-l) x_l + ...)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_preact as kp

DEPTHS = (8, 20, 38)  # 3, 9 and 18 units


def gradient_ratio(shortcut: str, depth: int) -> float:
    """|dL/dx_1| / |dL/dx_L| between the first and the last unit's output of an untrained net."""
    keras.utils.set_random_seed(depth)
    model = kp.ResNet(depth, version="v2", shortcut=shortcut, classifier_activation=None)
    sums = [layer.output for layer in model.layers if layer.name.endswith("_add")]
    probe = keras.Model(model.inputs, [sums[0], sums[-1], model.output])
    x = tf.random.stateless_normal((8, 32, 32, 3), seed=(1, 2))
    direction = tf.random.stateless_normal((8, 10), seed=(3, 4))
    with tf.GradientTape() as tape:
        # BN with its initial statistics is the identity map, as in the paper's analysis.
        first, last, logits = probe(x, training=False)
        loss = tf.reduce_sum(logits * direction)
    g_first, g_last = tape.gradient(loss, [first, last])
    return float(tf.norm(g_first) / tf.norm(g_last))


def test_identity_shortcuts_keep_the_gradient_and_scaling_shrinks_it_with_depth():
    identity = [gradient_ratio("identity", d) for d in DEPTHS]
    scaling = [gradient_ratio("scaling", d) for d in DEPTHS]
    # Identity: the identity term of dx_L/dx_l = I + d(sum F)/dx_l keeps it from vanishing.
    assert min(identity) > 0.5, identity
    # Constant scaling (λ = 0.5): every unit multiplies the shortcut term by λ.
    assert scaling[0] > scaling[1] > scaling[2], scaling
    assert scaling[-1] < 1e-3, scaling
    units = [3 * (d - 2) // 6 for d in DEPTHS]
    for ratio, s, n in zip(identity, scaling, units, strict=True):
        assert s / ratio == pytest.approx(0.5 ** (n - 1), rel=0.5)
    assert np.all(np.isfinite(identity))
