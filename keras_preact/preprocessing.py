"""Per-channel standardisation of raw [0, 255] pixels, as the first layer of a model.

Putting it inside the model (rather than only in the input pipeline) makes a saved model
self-contained: exported SavedModel, TFLite and ONNX files all take raw pixels.
"""

from __future__ import annotations

import numpy as np
from keras import layers

from keras_preact.catalogue import DATASET_STATS as DATASET_STATS
from keras_preact.command_line import UserError

PREPROCESS_LAYER = "preprocess"
"""The name of the normalisation layer a model built with ``preprocessing=`` starts with."""

PREPROCESSING_CHOICES = ("auto", "none", *DATASET_STATS)
"""What a command's ``--preprocessing`` takes for a trained model: ``auto`` (the model's own
``preprocess`` layer, required), ``none`` (the model takes raw [0, 255] pixels as they are) or a
dataset whose statistics are put in front of a model without that layer."""


def normalization_to_add(
    choice: str, *, has_layer: bool, model_name: str, option: str = "--preprocessing"
) -> str | None:
    """The ``DATASET_STATS`` key to put in front of a trained model fed raw [0, 255] pixels, or
    None when it needs nothing in front; ``choice`` is one of ``PREPROCESSING_CHOICES`` and
    ``has_layer`` says whether the model has its own ``preprocess`` layer.

    Nothing is guessed: ``auto`` refuses a model without the layer (its normalisation is unknown),
    and a dataset refuses a model that has one (it would normalise twice).

    Raises:
        UserError: an unknown choice, or one that does not fit the model (one line naming
            ``option``).
    """
    if choice not in PREPROCESSING_CHOICES:
        raise UserError(
            f"unknown {option} {choice!r}; expected one of {', '.join(PREPROCESSING_CHOICES)}"
        )
    if choice == "auto":
        if not has_layer:
            raise UserError(
                f"model {model_name!r} has no {PREPROCESS_LAYER!r} layer, so its input "
                f"normalisation is unknown; pass {option} {'|'.join(DATASET_STATS)} (the "
                f"statistics it was trained with) or {option} none (it takes raw [0, 255] "
                "pixels as they are)"
            )
        return None
    if choice == "none":
        return None
    if has_layer:
        raise UserError(
            f"model {model_name!r} already normalises its input (layer {PREPROCESS_LAYER!r}); "
            f"{option} {choice} would do it twice"
        )
    return choice


def mean_std(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of ``dataset`` in raw pixel units (0–255)."""
    if dataset not in DATASET_STATS:
        raise ValueError(
            f"unknown preprocessing {dataset!r}; expected one of {', '.join(DATASET_STATS)}"
        )
    mean, std = DATASET_STATS[dataset]
    return np.asarray(mean, "float32") * 255.0, np.asarray(std, "float32") * 255.0


def normalization_layer(dataset: str, data_format: str = "channels_last") -> layers.Normalization:
    """A non-adaptable ``Normalization`` layer named ``preprocess`` for ``dataset``'s statistics."""
    mean, std = mean_std(dataset)
    return layers.Normalization(
        axis=-1 if data_format == "channels_last" else 1,
        mean=mean.tolist(),
        variance=(std**2).tolist(),
        name="preprocess",
    )


def preprocess_input(x: np.ndarray, dataset: str = "cifar10") -> np.ndarray:
    """Standardise raw pixels (``..., 3`` channels last) for a model built without preprocessing."""
    mean, std = mean_std(dataset)
    return (np.asarray(x, "float32") - mean) / std
