"""Layers that ``.keras`` files saved by keras-preact 0.1 name, so that those files still load.

keras-preact 0.1 saved two layers of its own: ``keras_preact>ShortcutPad`` (option A) and
``keras_preact>BatchNormalization`` (Keras' batch norm with a fused training step). Models built
now use Keras' layers only; these classes exist only so that old files load, with their old
architecture: such a file keeps TensorFlow's 'same' padding on its strided convolutions, which
samples the residual branch one pixel off the shortcut (see the change log, docs/changelog.md).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="keras_preact")
class ShortcutPad(keras.layers.Layer):
    """Option A as keras-preact 0.1 saved it: strided subsampling, then zero channels appended."""

    def __init__(
        self, stride: int, out_channels: int, data_format: str | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.stride = int(stride)
        self.out_channels = int(out_channels)
        self.data_format = data_format or keras.config.image_data_format()

    def call(self, x):
        channels = x.shape[-1 if self.data_format == "channels_last" else 1]
        kernel = ops.cast(np.eye(channels, self.out_channels, dtype="float32")[None, None], x.dtype)
        return ops.conv(x, kernel, strides=self.stride, data_format=self.data_format)

    def compute_output_shape(self, input_shape):
        n, *dims = input_shape

        def half(d):
            return None if d is None else -(-d // self.stride)

        if self.data_format == "channels_last":
            h, w, _ = dims
            return (n, half(h), half(w), self.out_channels)
        _, h, w = dims
        return (n, self.out_channels, half(h), half(w))

    def get_config(self) -> dict:
        """Serializable configuration."""
        return {
            **super().get_config(),
            "stride": self.stride,
            "out_channels": self.out_channels,
            "data_format": self.data_format,
        }


@keras.saving.register_keras_serializable(package="keras_preact")
class BatchNormalization(keras.layers.BatchNormalization):
    """Keras' batch norm under the name keras-preact 0.1 saved it with."""
