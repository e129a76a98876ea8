"""The one layer Keras does not have: the parameter-free option-A shortcut of the v1 CIFAR networks.

It is a registered serializable, so `.keras` files that use them load with ``safe_mode=True`` once
``keras_preact`` is imported (no Lambda layers anywhere).
"""

from __future__ import annotations

import keras
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
        s = self.stride
        if self.data_format == "channels_last":
            if s > 1:
                x = x[:, ::s, ::s, :]
            extra = self.out_channels - x.shape[-1]
            pad = [[0, 0], [0, 0], [0, 0], [0, extra]]
        else:
            if s > 1:
                x = x[:, :, ::s, ::s]
            extra = self.out_channels - x.shape[1]
            pad = [[0, 0], [0, extra], [0, 0], [0, 0]]
        return ops.pad(x, pad) if extra > 0 else x

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
