"""CIFAR in memory: the train and test arrays of a dataset, checked, as ``TrainingData``.

Batches come from ``training.data.cifar.feed_tf`` (tf.data) on the TensorFlow backend and from
``training.data.cifar.feed_numpy`` (a Keras ``PyDataset``, no TensorFlow needed) on the others, under the
contract of ``training.data.batches``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_preact.command_line import UserError
from training import recipes
from training.data.batches import TrainPlan

SAMPLE_ORIGIN = "embedded sample (keras_preact/datasets/cifar10_sample.npz)"
"""Where ``cifar10-sample``'s images come from (``CifarArrays.source``)."""

PREPROCESSING = {"cifar10": "cifar10", "cifar100": "cifar100", "cifar10-sample": "cifar10"}
"""The per-channel statistics the model's first layer standardises with, per dataset."""


def feed() -> Any:
    """The input feed of the Keras backend in use: ``training.data.cifar.feed_tf`` (tf.data) on TensorFlow,
    ``training.data.cifar.feed_numpy`` (PyDataset, no TensorFlow needed) on the others."""
    import keras

    # Imported here: TensorFlow is not installed where JAX trains without it.
    if keras.backend.backend() == "tensorflow":
        from training.data.cifar import feed_tf

        return feed_tf
    from training.data.cifar import feed_numpy

    return feed_numpy


@dataclass(frozen=True)
class CifarArrays:
    """A CIFAR dataset in memory: uint8 NHWC images and int64 labels for the train and test splits,
    and where they came from (``source``: the embedded sample, the archive or folder, the tfds data
    dir); a ``TrainingData``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    label_names: tuple[str, ...]
    source: str = ""

    @property
    def num_train(self) -> int:
        return len(self.x_train)

    @property
    def num_test(self) -> int:
        return len(self.x_test)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def preprocessing(self) -> str:
        return PREPROCESSING.get(self.name, "cifar10")

    def train_batches(
        self,
        recipe: recipes.Recipe,
        *,
        seed: int,
        augment: bool = True,
        start_epoch: int = 0,
        skip: int = 0,
    ) -> Any:
        """Endless global batches of the training split for ``recipe`` (one-hot labels when its
        loss smooths them), from batch ``skip`` of epoch ``start_epoch`` (see ``TrainPlan.make``)."""
        plan = TrainPlan.make(
            self.x_train,
            self.y_train,
            recipe.batch_size,
            seed=seed,
            start_epoch=start_epoch,
            skip=skip,
            augment=augment,
            classes=self.num_classes if recipes.one_hot_labels(recipe) else None,
        )
        return feed().train_batches(plan)

    def eval_batches(self, recipe: recipes.Recipe, batch: int) -> Any:
        """The test split in order, in batches of ``batch``, labelled for ``recipe``'s loss."""
        return feed().eval_batches(
            self.x_test,
            self.y_test,
            batch,
            classes=self.num_classes if recipes.one_hot_labels(recipe) else None,
        )

    def holdout(self, fraction: float) -> CifarArrays:
        """The last ``fraction`` of the training images as the test split (the papers' 45k/5k)."""
        count = round(len(self.x_train) * fraction)
        if not 0 < count < len(self.x_train):
            raise UserError(
                f"--validation-split {fraction} leaves no training or no validation images out of "
                f"{len(self.x_train)}"
            )
        return dataclasses.replace(
            self,
            x_train=self.x_train[:-count],
            y_train=self.y_train[:-count],
            x_test=self.x_train[-count:],
            y_test=self.y_train[-count:],
        )

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "train_examples": self.num_train,
            "test_examples": self.num_test,
            "classes": self.num_classes,
        }


def make_arrays(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    label_names: tuple[str, ...],
    *,
    origin: str,
) -> CifarArrays:
    """Check what a source produced and wrap it; ``origin`` says where it came from (the error
    messages and ``CifarArrays.source`` name it)."""
    num_classes = len(label_names)
    arrays = {}
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        x, y = np.asarray(x), np.asarray(y)
        problem = None
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
            problem = f"images are {x.dtype} {x.shape}, expected uint8 (N, 32, 32, 3)"
        elif y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            problem = f"labels are {y.dtype} {y.shape}, expected integers ({len(x)},)"
        elif len(x) == 0:
            problem = "it is empty"
        elif y.min() < 0 or y.max() >= num_classes:
            problem = f"labels span {y.min()}..{y.max()}, expected 0..{num_classes - 1}"
        if problem:
            raise UserError(f"{origin}: {split} split: {problem}")
        arrays[split] = (np.ascontiguousarray(x), y.astype(np.int64))
    return CifarArrays(
        name,
        *arrays["train"],
        *arrays["test"],
        num_classes=num_classes,
        label_names=tuple(label_names),
        source=origin,
    )
