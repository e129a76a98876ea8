"""The embedded CIFAR-10 sample (1,000 train and 300 test real images, balanced over the 10
classes), for the training pipeline, the exporter and the tests, and the CIFAR class names of
``keras_preact.labels`` by dataset (``LABEL_NAMES``)."""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import NamedTuple

import numpy as np

from keras_preact.labels import CIFAR10_LABELS, CIFAR100_LABELS

SHA256 = "7212fe792286b5efdc49ffb1cb510b9ec8c9e16254e1fd2fc8dd5763f0bcdb92"
# The CIFAR class names live in keras_preact.labels, with the other label sets.
LABEL_NAMES: dict[str, tuple[str, ...]] = {"cifar10": CIFAR10_LABELS, "cifar100": CIFAR100_LABELS}
"""Official label names of each full dataset."""


class Sample(NamedTuple):
    """uint8 NHWC images and uint8 labels of the embedded sample."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    label_names: tuple[str, ...]


def load_sample() -> Sample:
    """Load the embedded sample, checking the file's checksum first."""
    blob = resources.files(__package__).joinpath("cifar10_sample.npz").read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != SHA256:
        raise ValueError(f"embedded CIFAR-10 sample is corrupt: sha256 {digest}, expected {SHA256}")
    import io

    with np.load(io.BytesIO(blob), allow_pickle=False) as d:
        return Sample(
            d["x_train"],
            d["y_train"],
            d["x_test"],
            d["y_test"],
            tuple(str(s) for s in d["label_names"]),
        )
