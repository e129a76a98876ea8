"""Real CIFAR-10 images for the accuracy and inference measurements.

Either a NumPy ``.npz`` file given on the command line (keys ``x_train``, ``y_train``, ``x_test``,
``y_test``: uint8 NHWC 32x32x3 images and integer labels 0-9) or, in the reduced mode, the sample
embedded in ``keras_preact.datasets``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from keras_preact.command_line import UserError

KEYS = ("x_train", "y_train", "x_test", "y_test")
CLASSES = 10


class Images(NamedTuple):
    """uint8 NHWC train/test images and int64 labels, and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


def _check(name: str, x: np.ndarray, y: np.ndarray, where: str) -> None:
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
        raise UserError(
            f"{where}: x_{name} must be uint8 images of shape (N, 32, 32, 3), "
            f"got {x.dtype} {x.shape}"
        )
    if y.ndim != 1 or len(y) != len(x):
        raise UserError(f"{where}: y_{name} must hold one label per image, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= CLASSES:
        raise UserError(f"{where}: y_{name} must be integer labels 0-{CLASSES - 1}")


def load_npz(path: str | Path) -> Images:
    """Load and check a CIFAR-10 ``.npz``; ``UserError`` with one clear line otherwise."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--data {path}: no such file (expected a .npz with {', '.join(KEYS)})")
    if not zipfile.is_zipfile(path):
        raise UserError(f"--data {path}: not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as d:
            arrays = {k: d[k] for k in KEYS if k in d.files}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as e:
        raise UserError(f"--data {path}: not a readable .npz file ({e})") from None
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise UserError(f"--data {path}: missing arrays {missing}; needs {', '.join(KEYS)}")
    for name in ("train", "test"):
        _check(name, arrays[f"x_{name}"], arrays[f"y_{name}"], f"--data {path}")
    return Images(
        arrays["x_train"],
        arrays["y_train"].astype(np.int64),
        arrays["x_test"],
        arrays["y_test"].astype(np.int64),
        str(path),
    )


def load_embedded_sample() -> Images:
    """The 1,000/300 image CIFAR-10 sample shipped in ``keras_preact.datasets`` (reduced mode)."""
    from keras_preact.datasets import load_sample

    s = load_sample()
    return Images(
        s.x_train,
        s.y_train.astype(np.int64),
        s.x_test,
        s.y_test.astype(np.int64),
        "keras_preact.datasets",
    )


def at_size(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 NHWC images resized to ``size`` (height, width), bilinear (PIL, so that every
    process of a run, with or without TensorFlow, makes the same pixels)."""
    from PIL import Image  # the benchmark's own dependency (pillow), needed here only

    if images.shape[1:3] == tuple(size):
        return images
    height, width = size
    return np.stack(
        [
            np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
            for image in images
        ]
    )


def load_images(path: str | Path | None) -> Images:
    """The ``--data`` file, or the embedded sample when no path is given."""
    return load_embedded_sample() if path is None else load_npz(path)
