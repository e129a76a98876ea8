"""Class names of the label sets keras-preact knows, and ``decode_predictions`` (NumPy only).

Label sets:

* ``imagenet``: the 1,000 ILSVRC-2012 classes in the usual class-index order (sorted WordNet ids,
  the order of torchvision's, timm's and keras.applications' classifiers), with torchvision's
  readable names (``"tench"``, ``"great white shark"``, ``"crane bird"`` and ``"crane"`` told
  apart) and the WordNet id of each class (``"n01440764"``), as keras.applications pairs them.
* ``cifar10``: the 10 CIFAR-10 classes.
* ``cifar100``: the 100 fine CIFAR-100 classes.

>>> import numpy as np
>>> decode_predictions(np.eye(10)[[3]], top=1)
[[Prediction(id='3', name='cat', score=1.0)]]
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources
from typing import Any, NamedTuple

import numpy as np

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
"""The official CIFAR-10 label names, in label order."""

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

LABEL_SETS: tuple[str, ...] = ("cifar10", "cifar100", "imagenet")
"""The names ``label_names`` and ``decode_predictions(labels=...)`` take."""

# Each line: WordNet id, a tab, the class name; line i is class i.
IMAGENET_FILE = "imagenet_classes.tsv"
IMAGENET_CLASSES = 1000


class Prediction(NamedTuple):
    """One ranked class of one image, laid out as keras.applications' ``decode_predictions``."""

    id: str
    """The WordNet id of an ImageNet class (``"n01440764"``); elsewhere the class index (``"3"``)."""
    name: str
    """The class name (``"tench"``, ``"cat"``)."""
    score: float
    """The model's output for the class (a probability, or a logit for a model without softmax)."""


@functools.cache
def _imagenet() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(WordNet ids, names) of the ImageNet classes, read once from the package's data file."""
    text = resources.files(__package__).joinpath(IMAGENET_FILE).read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines()]
    if len(rows) != IMAGENET_CLASSES or any(len(row) != 2 or not all(row) for row in rows):
        raise RuntimeError(
            f"keras_preact/labels/{IMAGENET_FILE} is damaged: expected {IMAGENET_CLASSES} lines "
            "'WORDNET_ID<TAB>NAME'; reinstall keras-preact"
        )
    ids, names = zip(*rows, strict=True)
    return tuple(ids), tuple(names)


def label_names(label_set: str) -> tuple[str, ...]:
    """The class names of a label set (``LABEL_SETS``), in class-index order.

    >>> label_names("imagenet")[:3]
    ('tench', 'goldfish', 'great white shark')
    """
    if label_set == "imagenet":
        return _imagenet()[1]
    if label_set == "cifar10":
        return CIFAR10_LABELS
    if label_set == "cifar100":
        return CIFAR100_LABELS
    raise ValueError(
        f"unknown label set {label_set!r}; expected one of {', '.join(map(repr, LABEL_SETS))}"
    )


def imagenet_wordnet_ids() -> tuple[str, ...]:
    """The WordNet id of each ImageNet class, in class-index order (``"n01440764"`` first)."""
    return _imagenet()[0]


def label_set_for(classes: int) -> str | None:
    """The label set with ``classes`` classes (10, 100 or 1000), or None."""
    return {10: "cifar10", 100: "cifar100", IMAGENET_CLASSES: "imagenet"}.get(classes)


def _check_probs(probs: Any) -> np.ndarray:
    try:
        array = np.asarray(probs)
    except (TypeError, ValueError):  # ragged nested lists and the like
        array = None
    # bfloat16 and float8 (ml_dtypes, the outputs of mixed-precision models) are floats too.
    numeric = array is not None and (
        array.dtype.kind in "biuf" or array.dtype.name.startswith(("bfloat", "float"))
    )
    if not numeric:
        raise ValueError(
            f"probs must be a numeric array of shape (batch, classes), got {_short(probs)}"
        )
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(
            f"probs must have shape (batch, classes) with at least one image and one class, "
            f"got shape {array.shape}"
        )
    array = array.astype(np.float64)
    bad = np.argwhere(~np.isfinite(array))
    if len(bad):
        row, col = (int(i) for i in bad[0])
        raise ValueError(
            f"probs must be finite, got {array[row, col]} at [{row}, {col}] "
            f"({len(bad)} non-finite value{'s' if len(bad) > 1 else ''})"
        )
    return array


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _resolve_labels(labels: Any, classes: int) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """(names, WordNet ids or None) for a ``classes``-way output."""
    if labels is None:
        label_set = label_set_for(classes)
        if label_set is None:
            raise ValueError(
                f"no label set has {classes} classes (cifar10: 10, cifar100: 100, imagenet: 1000); "
                "pass labels= with one name per class"
            )
        labels = label_set
    if isinstance(labels, str):
        names = label_names(labels)
        ids = imagenet_wordnet_ids() if labels == "imagenet" else None
    elif isinstance(labels, Sequence) and all(isinstance(n, str) for n in labels):
        names, ids = tuple(labels), None
    else:
        raise ValueError(
            f"labels must be None, a label set name ({', '.join(LABEL_SETS)}) or a sequence of "
            f"class names, got {_short(labels)}"
        )
    if len(names) != classes:
        what = f"label set {labels!r}" if isinstance(labels, str) else "labels"
        raise ValueError(
            f"{what} has {len(names)} classes but probs has {classes} (its last dimension)"
        )
    return names, ids


def decode_predictions(probs: Any, top: int = 5, labels: Any = None) -> list[list[Prediction]]:
    """The ``top`` classes of each image, best first, with readable names.

    Like ``keras.applications.imagenet_utils.decode_predictions``, for keras-preact's label sets.

    Args:
        probs: the model's output for a batch, shape ``(batch, classes)`` (a NumPy array or any
            backend's tensor); probabilities or logits, ranked by value (ties: lower class first).
        top: how many classes to return per image (at most ``classes``), an integer >= 1.
        labels: ``None`` picks the label set from the number of classes (10: ``cifar10``,
            100: ``cifar100``, 1000: ``imagenet``); or a label set name; or a sequence of one
            name per class (for a model with classes of its own).

    Returns:
        One list per image of ``Prediction(id, name, score)`` tuples: ``id`` is the WordNet id for
        ImageNet classes (as keras.applications gives it) and the class index as a string
        otherwise.

    Raises:
        ValueError: a bad ``probs`` (not 2-D, empty, not numeric, not finite), ``top``, or
            ``labels`` (unknown set, count that differs from the classes, no set for the count).

    >>> import numpy as np
    >>> decode_predictions(np.eye(1000)[[1]], top=1)
    [[Prediction(id='n01443537', name='goldfish', score=1.0)]]
    """
    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        raise ValueError(f"top must be an integer >= 1, got {top!r}")
    array = _check_probs(probs)
    names, ids = _resolve_labels(labels, array.shape[1])
    k = min(top, array.shape[1])
    # A stable sort of the negated scores: the best first, and equal scores in class order.
    order = np.argsort(-array, axis=1, kind="stable")[:, :k]
    return [
        [
            Prediction(ids[c] if ids else str(c), names[c], float(row[c]))
            for c in (int(i) for i in ranks)
        ]
        for row, ranks in zip(array, order, strict=True)
    ]


__all__ = [
    "CIFAR10_LABELS",
    "CIFAR100_LABELS",
    "LABEL_SETS",
    "Prediction",
    "decode_predictions",
    "imagenet_wordnet_ids",
    "label_names",
    "label_set_for",
]
