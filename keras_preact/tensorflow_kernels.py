"""The package's only TensorFlow code: a fused training kernel for ``layers.BatchNormalization``.

Imported by that layer only when Keras runs on the TensorFlow backend; the networks themselves are
built from ``keras.layers`` and ``keras.ops`` and run unchanged on every backend.
"""

from __future__ import annotations

import tensorflow as tf


def fused_batch_norm_training(
    x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: float, channels_first: bool
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Training-mode batch norm of a float32 or bfloat16 4-D ``x`` as one op (gradient: one op too).

    ``gamma`` and ``beta`` are float32; the statistics are accumulated in float32 for either input.
    Returns the normalised, scaled and shifted ``x`` (in ``x``'s dtype), the float32 batch mean and
    the *biased* batch variance (what Keras' moving statistics use; the op itself returns the
    Bessel-corrected one).
    """
    empty = tf.zeros([0], tf.float32)  # no running statistics go in: the layer updates its own
    y, mean, unbiased, *_ = tf.raw_ops.FusedBatchNormV3(
        x=x,
        scale=gamma,
        offset=beta,
        mean=empty,
        variance=empty,
        epsilon=epsilon,
        exponential_avg_factor=1.0,
        data_format="NCHW" if channels_first else "NHWC",
        is_training=True,
    )
    shape = tf.shape(x)
    count = tf.cast(
        shape[0] * shape[2] * shape[3] if channels_first else shape[0] * shape[1] * shape[2],
        tf.float32,
    )
    variance = tf.math.multiply_no_nan(unbiased, (count - 1.0) / count)  # 0 for a single value
    return y, tf.stop_gradient(mean), tf.stop_gradient(variance)
