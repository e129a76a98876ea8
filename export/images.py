"""Real images for calibration, warm-up and verification: the embedded CIFAR-10 sample."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_preact.datasets import load_sample


def sample_images(
    split: str, image_size: tuple[int, int], count: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` images of the embedded sample's ``split`` (``"train"`` or ``"test"``).

    Returns uint8 ``(N, H, W, 3)`` images resized to ``image_size`` (bilinear, rounded, only when
    the model is not 32x32) and their uint8 CIFAR-10 labels.
    """
    sample = load_sample()
    if split not in ("train", "test"):
        raise ValueError(f"unknown sample split {split!r}; expected 'train' or 'test'")
    x, y = (sample.x_train, sample.y_train) if split == "train" else (sample.x_test, sample.y_test)
    if count is not None:
        x, y = x[:count], y[:count]
    return resize_uint8(x, image_size), y


def resize_uint8(images: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 NHWC images to ``image_size`` (a no-op copy when they already have it)."""
    images = np.asarray(images)
    if images.shape[1:3] == tuple(image_size):
        return images.astype(np.uint8, copy=True)
    resized = tf.image.resize(images, image_size, method="bilinear", antialias=True)
    return np.clip(np.round(resized.numpy()), 0, 255).astype(np.uint8)


def encode_images(images: np.ndarray, image_format: str = "png") -> list[bytes]:
    """Encode uint8 HWC images as PNG (lossless) or JPEG (quality 95) bytes."""
    if image_format == "png":
        return [tf.io.encode_png(img).numpy() for img in images]
    if image_format == "jpeg":
        return [tf.io.encode_jpeg(img, quality=95).numpy() for img in images]
    raise ValueError(f"unknown image format {image_format!r}; expected 'png' or 'jpeg'")
