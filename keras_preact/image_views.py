"""The test-time view of a decoded image that training, evaluation and serving share (TensorFlow).

The v1 paper's single-crop testing (He et al. 2015, sec. 3.4; Krizhevsky et al. 2012): the shorter
side resized to 256 and the central 224x224 crop. Sizes are given for the papers' 224 crop and
scale with the crop: at crop ``S`` the shorter side is ``round(256 * S / 224)``. Resizing is
bilinear with antialiasing (as PIL), and an image whose shorter side already has the size is not
resampled, so the crop is then exactly a window of the image, starting at ``(H - S) // 2``,
``(W - S) // 2``.

``training.images`` validates on this view, ``training.evaluate --protocol center`` tests on it and
``python -m export --bytes-resize center-crop`` serves encoded images through it. The models
themselves never need it. TensorFlow is imported by the view functions only: the sizes
(``scaled``) serve code that runs without it, such as the benchmark's PyTorch side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

REFERENCE_CROP = 224
RESIZE = 256
"""Shorter side before the crop, at the reference crop of 224."""


def scaled(size: int, crop: int) -> int:
    """``size`` (given at the reference crop of 224) at crop ``crop``."""
    return max(1, round(size * crop / REFERENCE_CROP))


def resize_shorter(image: tf.Tensor, size: int | tf.Tensor) -> tf.Tensor:
    """A float32 ``(H', W', C)`` image whose shorter side is ``size`` (aspect ratio kept, the longer
    side rounded); the image itself (as float32) when its shorter side is already ``size``."""
    import tensorflow as tf

    image = tf.cast(image, tf.float32)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    short = tf.minimum(height, width)
    size = tf.cast(size, tf.int32)

    def resized() -> tf.Tensor:
        ratio = tf.cast(size, tf.float64) / tf.cast(short, tf.float64)
        new_h = tf.maximum(size, tf.cast(tf.round(tf.cast(height, tf.float64) * ratio), tf.int32))
        new_w = tf.maximum(size, tf.cast(tf.round(tf.cast(width, tf.float64) * ratio), tf.int32))
        new_h = tf.where(height == short, size, new_h)
        new_w = tf.where(width == short, size, new_w)
        return tf.image.resize(image, tf.stack([new_h, new_w]), "bilinear", antialias=True)

    return tf.cond(short == size, lambda: image, resized)


def center_crop(image: tf.Tensor, crop: int) -> tf.Tensor:
    """The central ``crop`` x ``crop`` window, from ``((H - crop) // 2, (W - crop) // 2)``."""
    import tensorflow as tf

    shape = tf.shape(image)
    top, left = (shape[0] - crop) // 2, (shape[1] - crop) // 2
    return image[top : top + crop, left : left + crop]


def center(image: tf.Tensor, crop: int) -> tf.Tensor:
    """``(1, crop, crop, 3)``: the ``center`` protocol's view of a decoded image."""
    return center_crop(resize_shorter(image, scaled(RESIZE, crop)), crop)[None]
