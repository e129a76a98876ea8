"""A real-image folder for the image tests, written from the embedded CIFAR-10 sample: upscaled to
several sizes and aspect ratios, JPEG, PNG, BMP, GIF and WebP, one grayscale and one CMYK file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from keras_preact.datasets import load_sample

SIZES = ((40, 40), (64, 48), (40, 72), (56, 96), (88, 56), (48, 48))
"""(width, height) of the written images, in turn."""

FORMATS = ("JPEG", "PNG")
SPECIAL = {  # index in the class folder -> (format, mode) for the first class only
    2: ("BMP", "RGB"),
    3: ("GIF", "P"),
    4: ("WEBP", "RGB"),
    5: ("JPEG", "L"),
}
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "GIF": ".gif", "WEBP": ".webp"}


def encode(pixels: np.ndarray, size: tuple[int, int], fmt: str, mode: str = "RGB") -> bytes:
    """``pixels`` upscaled to ``size`` (width, height), converted to ``mode``, encoded as ``fmt``."""
    image = Image.fromarray(pixels).resize(size, Image.BICUBIC).convert(mode)
    out = io.BytesIO()
    image.save(out, fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return out.getvalue()


def write_folder(root: Path, *, train_per_class: int = 6, val_per_class: int = 2) -> Path:
    """``root/train/<class>/`` and ``root/val/<class>/`` of the sample's 10 classes (train images
    from the sample's training split, val images from its test split); returns ``root``."""
    sample = load_sample()
    for split, x, y, per_class in (
        ("train", sample.x_train, sample.y_train, train_per_class),
        ("val", sample.x_test, sample.y_test, val_per_class),
    ):
        for label, name in enumerate(sample.label_names):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i, index in enumerate(np.flatnonzero(y == label)[:per_class]):
                size = SIZES[(i + label) % len(SIZES)]
                fmt, mode = FORMATS[(i + label) % 2], "RGB"
                if split == "train" and label == 0 and i in SPECIAL:
                    fmt, mode = SPECIAL[i]
                if split == "train" and label == 1 and i == 0:
                    fmt, mode = "JPEG", "CMYK"
                (folder / f"{i:03d}{EXTENSIONS[fmt]}").write_bytes(
                    encode(x[index], size, fmt, mode)
                )
    return root


def add_bad_files(root: Path) -> list[str]:
    """A truncated JPEG, an undecodable PNG and a text file; returns the two bad images' paths
    relative to ``root``."""
    sample = load_sample()
    blob = encode(sample.x_train[0], (64, 64), "JPEG")
    (root / "train" / "cat" / "broken.jpg").write_bytes(blob[: len(blob) // 2])
    (root / "val" / "dog" / "garbage.png").write_bytes(b"not an image at all")
    (root / "train" / "dog" / "notes.txt").write_text("where these photos come from\n")
    return ["train/cat/broken.jpg", "val/dog/garbage.png"]
