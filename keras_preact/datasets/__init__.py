"""Class names of the CIFAR datasets and the embedded CIFAR-10 sample (1,000 train and 300 test real
images, balanced over the 10 classes), for the training pipeline, the exporter and the tests."""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import NamedTuple

import numpy as np

SHA256 = "7212fe792286b5efdc49ffb1cb510b9ec8c9e16254e1fd2fc8dd5763f0bcdb92"
CIFAR10_LABELS: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


CIFAR100_LABELS: tuple[str, ...] = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip
"""The official CIFAR-100 fine label names, in label order."""

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
