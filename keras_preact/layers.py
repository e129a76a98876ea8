"""The two layers of the networks that are not Keras' own.

* ``ShortcutPad``: the parameter-free option-A shortcut of the v1 CIFAR networks, which Keras does
  not have.
* ``BatchNormalization``: Keras' layer, numerically the same, whose training step runs as one fused
  kernel on the TensorFlow backend (see its docstring).

Both are registered serializables, so `.keras` files that use them load with ``safe_mode=True`` once
``keras_preact`` is imported (no Lambda layers anywhere).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="keras_preact")
class ShortcutPad(keras.layers.Layer):
    """Option-A shortcut of the v1 paper: strided subsampling, then zero channels appended.

    Parameter-free, as in the CIFAR networks of "Deep Residual Learning" (section 4.2): the extra
    channels of the identity are zeros, the spatial size halves by taking every ``stride``-th pixel.

    Args:
        stride: spatial subsampling factor (1 or 2).
        out_channels: number of channels after padding (>= the input's).
        data_format: ``"channels_last"`` or ``"channels_first"``; defaults to Keras' setting.
    """

    def __init__(
        self, stride: int, out_channels: int, data_format: str | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.stride = int(stride)
        self.out_channels = int(out_channels)
        self.data_format = data_format or keras.config.image_data_format()

    def call(self, x):
        channel_axis = -1 if self.data_format == "channels_last" else 1
        channels = x.shape[channel_axis]
        if self.stride == 1 and channels == self.out_channels:
            return x
        # As a 1x1 convolution with a fixed 0/1 kernel, not a strided slice and a pad: the same
        # numbers exactly (each output is one input times 1, plus zeros), and one op that TFLite's
        # XNNPACK delegate takes, so the exported v1 graphs are not split into partitions there.
        kernel = np.eye(channels, self.out_channels, dtype="float32")[None, None]
        kernel = ops.cast(kernel, x.dtype)
        return ops.conv(x, kernel, strides=self.stride, data_format=self.data_format)

    def compute_output_shape(self, input_shape):
        n, *dims = input_shape
        if self.data_format == "channels_last":
            h, w, _ = dims
            return (n, _ceil_div(h, self.stride), _ceil_div(w, self.stride), self.out_channels)
        _, h, w = dims
        return (n, self.out_channels, _ceil_div(h, self.stride), _ceil_div(w, self.stride))

    def get_config(self) -> dict:
        """Serializable configuration."""
        return {
            **super().get_config(),
            "stride": self.stride,
            "out_channels": self.out_channels,
            "data_format": self.data_format,
        }


def _ceil_div(n: int | None, d: int) -> int | None:
    return None if n is None else -(-n // d)


FUSED_INPUT_DTYPES = ("float32", "bfloat16")


@keras.saving.register_keras_serializable(package="keras_preact")
class BatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` whose training step is one fused kernel on TensorFlow.

    Keras 3 computes batch statistics and the normalisation as separate ``keras.ops`` on every
    backend. XLA fuses them on JAX, but TensorFlow (which does not use XLA on the CPU) runs each as
    its own op: about a fifth of a ResNet-20 training step on two CPU cores. On the TensorFlow
    backend this layer computes a training-mode forward pass with TensorFlow's fused batch-norm
    kernel (one op forward, one backward; oneDNN also fuses the ReLU after it) and updates the
    moving statistics exactly as Keras does (biased batch variance, same momentum).

    Everything else is Keras' own code path: inference, the JAX and PyTorch backends, masks,
    synchronised (cross-replica) statistics, renormalisation, and inputs that are not 4-D, so
    exported graphs and the other backends are unchanged. ``use_fused_kernel = False`` on the class
    or an instance turns the fused path off (the tests compare both paths).
    """

    use_fused_kernel: bool = True

    def call(self, inputs, training=None, mask=None):
        kernel = self._fused_kernel(inputs, training, mask)
        if kernel is None:
            return super().call(inputs, training=training, mask=mask)
        # float32 and bfloat16 go in as they are: the kernel accumulates the statistics in float32
        # either way (as Keras does after casting); under a mixed_bfloat16 policy casting every
        # activation to float32 and back would add two passes over it, forward and backward.
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        x = inputs if dtype in FUSED_INPUT_DTYPES else ops.cast(inputs, "float32")
        outputs, mean, variance = kernel(
            x,
            ops.cast(self.gamma, "float32") if self.scale else ops.ones_like(self.moving_mean),
            ops.cast(self.beta, "float32") if self.center else ops.zeros_like(self.moving_mean),
            self.epsilon,
            self.axis % 4 == 1,
        )
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        return ops.cast(outputs, self.compute_dtype)

    def _fused_kernel(self, inputs, training, mask) -> Callable | None:
        """The backend's fused training kernel when this call can use it, else None."""
        if not (training and self.trainable and self.use_fused_kernel) or mask is not None:
            return None
        if (
            self.synchronized
            or self.renorm
            or len(inputs.shape) != 4
            or self.axis % 4 not in (1, 3)
        ):
            return None
        if keras.backend.backend() != "tensorflow":
            return None
        from keras_preact import tensorflow_kernels

        return tensorflow_kernels.fused_batch_norm_training
