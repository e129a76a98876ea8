"""The papers' testing protocols, as tensor functions of one decoded image (He et al. 2015, sec. 3.4).

* ``center``: the shorter side resized to 256 (for a 224 crop), the central 224x224 crop;
* ``10crop``: the same resize, the four corner crops and the central one, and their horizontal
  flips (Krizhevsky et al. 2012), probabilities averaged;
* ``multiscale``: the fully-convolutional form: the whole image with its shorter side resized to each
  of 224, 256, 384, 480 and 640, and its flip, through the network (the global average pool turns
  the classifier into one applied at every position and averaged), probabilities averaged over
  scales and flips.

Sizes are given for the papers' 224 crop and scale with the crop: at crop ``S`` the shorter side is
``round(256 * S / 224)`` and the scales are ``round(s * S / 224)``. Resizing is bilinear with
antialiasing (as PIL), and an image whose shorter side already has the size is not resampled, so a
crop is then exactly a window of the image: the centre window starts at ``(H - S) // 2``,
``(W - S) // 2``. Crops come in the order top-left, top-right, bottom-left, bottom-right, centre,
then the same five flipped.
"""

from __future__ import annotations

import tensorflow as tf

PROTOCOLS = ("center", "10crop", "multiscale")
"""Values of ``python -m training.evaluate --protocol``."""

REFERENCE_CROP = 224
RESIZE = 256
"""Shorter side before the crop, at the reference crop of 224."""
SCALES = (224, 256, 384, 480, 640)
"""Shorter sides of multi-scale testing, at the reference crop of 224 (He et al. 2015, sec. 3.4)."""


def scaled(size: int, crop: int) -> int:
    """``size`` (given at the reference crop of 224) at crop ``crop``."""
    return max(1, round(size * crop / REFERENCE_CROP))


def resize_shorter(image: tf.Tensor, size: int | tf.Tensor) -> tf.Tensor:
    """A float32 ``(H', W', C)`` image whose shorter side is ``size`` (aspect ratio kept, the longer
    side rounded); the image itself (as float32) when its shorter side is already ``size``."""
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


def corner_offsets(height: tf.Tensor, width: tf.Tensor, crop: int) -> tf.Tensor:
    """``(5, 2)`` int32 ``(top, left)`` of the top-left, top-right, bottom-left, bottom-right and
    centre crops."""
    bottom, right = height - crop, width - crop
    zero = tf.zeros_like(bottom)
    return tf.stack(
        [
            tf.stack([zero, zero]),
            tf.stack([zero, right]),
            tf.stack([bottom, zero]),
            tf.stack([bottom, right]),
            tf.stack([bottom // 2, right // 2]),
        ]
    )


def center_crop(image: tf.Tensor, crop: int) -> tf.Tensor:
    """The central ``crop`` x ``crop`` window (see ``corner_offsets``)."""
    shape = tf.shape(image)
    top, left = (shape[0] - crop) // 2, (shape[1] - crop) // 2
    return image[top : top + crop, left : left + crop]


def center(image: tf.Tensor, crop: int) -> tf.Tensor:
    """``(1, crop, crop, 3)``: the ``center`` protocol's view of a decoded image."""
    return center_crop(resize_shorter(image, scaled(RESIZE, crop)), crop)[None]


def ten_crops(image: tf.Tensor, crop: int) -> tf.Tensor:
    """``(10, crop, crop, 3)``: the ``10crop`` protocol's views (order in the module docstring)."""
    image = resize_shorter(image, scaled(RESIZE, crop))
    shape = tf.shape(image)
    offsets = corner_offsets(shape[0], shape[1], crop)
    crops = tf.stack(
        [image[o[0] : o[0] + crop, o[1] : o[1] + crop] for o in tf.unstack(offsets, num=5)]
    )
    crops = tf.ensure_shape(crops, [5, crop, crop, None])
    return tf.concat([crops, tf.reverse(crops, axis=[2])], axis=0)


def views(image: tf.Tensor, protocol: str, crop: int) -> tf.Tensor:
    """The fixed-size views of ``center`` and ``10crop`` (``multiscale`` has one per scale: see
    ``scale_views``)."""
    if protocol == "center":
        return center(image, crop)
    if protocol == "10crop":
        return ten_crops(image, crop)
    raise ValueError(f"protocol {protocol!r} has no fixed-size views")


def scale_views(image: tf.Tensor, crop: int) -> list[tf.Tensor]:
    """For ``multiscale``: per scale, ``(2, H_s, W_s, 3)``: the resized image and its flip."""
    out = []
    for size in SCALES:
        resized = resize_shorter(image, scaled(size, crop))
        out.append(tf.stack([resized, tf.reverse(resized, axis=[1])]))
    return out
