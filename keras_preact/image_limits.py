"""The decoded-pixel limit on encoded images, read from their headers before they are decoded.

A small encoded file can hold a huge image: a 0.6 MB PNG of 14000 x 14000 pixels decodes to
0.6 GB. Wherever the package decodes images it did not make (the image-folder scan of
``training.images`` and ``training.evaluate``, the ``serving_bytes`` signature that
``python -m export`` writes), it first reads the image's size from its header, which costs a few
bytes, and refuses an image of more than :func:`max_pixels` pixels (width x height) before
anything is decoded.

The limit is :data:`DEFAULT_MAX_PIXELS` (67,108,864 pixels: 8192 x 8192, more than any camera
photo or ImageNet image; 192 MiB decoded as 8-bit RGB). ``KERAS_PREACT_MAX_IMAGE_PIXELS=N`` in the
environment changes it for the training commands and is the default of
``python -m export --max-image-pixels N``, which writes the limit into the exported
``serving_bytes`` signature (the server that runs it, TF Serving or ``export.local_server``,
enforces that one).

Sizes are read from the headers of the formats TensorFlow decodes: JPEG (its SOF marker), PNG
(IHDR), GIF (the logical screen), BMP and WebP (VP8, VP8L and VP8X). A file in none of them has
no size here; the decoder then refuses it as it always did. TensorFlow is imported by the graph
functions only.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from keras_preact.command_line import UserError

if TYPE_CHECKING:
    import tensorflow as tf

DEFAULT_MAX_PIXELS = 8192 * 8192
ENVIRONMENT_VARIABLE = "KERAS_PREACT_MAX_IMAGE_PIXELS"
_HEAD = 32  # bytes of a file that hold the size for every format but JPEG


def check_max_pixels(value: int, what: str = "--max-image-pixels") -> int:
    """``value`` if it is a usable limit (a positive number of pixels)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{what} must be a positive number of pixels, got {value!r}")
    return value


def max_pixels() -> int:
    """The limit: ``$KERAS_PREACT_MAX_IMAGE_PIXELS`` when set, else :data:`DEFAULT_MAX_PIXELS`.

    Raises:
        UserError: the variable is set to something that is not a positive whole number.
    """
    configured = os.environ.get(ENVIRONMENT_VARIABLE, "").strip().replace("_", "")
    if not configured:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(configured)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise UserError(
            f"{ENVIRONMENT_VARIABLE}={os.environ[ENVIRONMENT_VARIABLE]!r} is not a positive "
            "number of pixels"
        )
    return value


def header_size(data: tf.Tensor) -> tf.Tensor:
    """int64 ``(height, width)`` of an encoded image (a scalar string tensor) from its header;
    ``(0, 0)`` when it is in none of the formats above (or too short to say). A JPEG whose
    header is damaged fails here with TensorFlow's ``Invalid JPEG data`` error."""
    import tensorflow as tf

    head = tf.io.decode_raw(
        tf.strings.substr(
            tf.strings.join([tf.strings.substr(data, 0, _HEAD), "\0" * _HEAD]), 0, _HEAD
        ),
        tf.uint8,
    )
    head = tf.cast(tf.ensure_shape(head, [_HEAD]), tf.int64)

    def number(offset: int, length: int, big_endian: bool = False) -> tf.Tensor:
        shifts = range(length) if not big_endian else reversed(range(length))
        return sum(head[offset + i] * (1 << (8 * s)) for i, s in enumerate(shifts))

    def starts(prefix: bytes, offset: int = 0) -> tf.Tensor:
        return tf.reduce_all(
            tf.equal(head[offset : offset + len(prefix)], tf.constant(list(prefix), tf.int64))
        )

    def signed32(value: tf.Tensor) -> tf.Tensor:
        return tf.abs(tf.where(value >= 1 << 31, value - (1 << 32), value))

    vp8l = number(21, 4)
    webp = starts(b"RIFF") & starts(b"WEBP", 8)
    sizes = [
        (starts(b"\x89PNG\r\n\x1a\n"), (number(20, 4, True), number(16, 4, True))),
        (starts(b"GIF8"), (number(8, 2), number(6, 2))),
        (starts(b"BM"), (signed32(number(22, 4)), signed32(number(18, 4)))),
        (webp & starts(b"VP8 ", 12), (number(28, 2) % (1 << 14), number(26, 2) % (1 << 14))),
        (
            webp & starts(b"VP8L", 12),
            ((vp8l // (1 << 14)) % (1 << 14) + 1, vp8l % (1 << 14) + 1),
        ),
        (webp & starts(b"VP8X", 12), (number(27, 3) + 1, number(24, 3) + 1)),
    ]
    size = tf.zeros([2], tf.int64)
    for condition, (height, width) in reversed(sizes):
        size = tf.where(condition, tf.stack([height, width]), size)
    return tf.cond(
        tf.io.is_jpeg(data),
        lambda: tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64),
        lambda: size,
    )


def assert_within(data: tf.Tensor, limit: int) -> tf.Operation:
    """An op that fails (``InvalidArgumentError``) when the encoded image ``data`` has more than
    ``limit`` pixels by its header; run it before decoding (``tf.control_dependencies``)."""
    import tensorflow as tf

    size = header_size(data)
    message = tf.strings.format(
        "image of {} x {} pixels is over the limit of {} decoded pixels",
        (size[1], size[0], tf.constant(limit, tf.int64)),
    )
    return tf.debugging.Assert(size[0] * size[1] <= limit, [message])
