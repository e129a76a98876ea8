"""CIFAR in memory: a dataset's checked train and test arrays as ``TrainingData``, fed by
``cifar.feed_tf`` (tf.data) on the TensorFlow backend and ``cifar.feed_numpy`` (a Keras ``PyDataset``,
no TensorFlow needed) on the others."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from keras_preact.command_line import UserError
from training import recipes
from training.data.batches import ArrayPlan, TrainingData

SAMPLE_ORIGIN = "embedded sample (keras_preact/datasets/cifar10_sample.npz)"
"""Where ``cifar10-sample``'s images come from (``CifarArrays.origin``)."""


def feed() -> Any:
    """The input feed module of the Keras backend in use."""
    # Imported here: TensorFlow is not installed where JAX trains without it.
    if keras.backend.backend() == "tensorflow":
        from training.data.cifar import feed_tf

        return feed_tf
    from training.data.cifar import feed_numpy

    return feed_numpy


@dataclass(frozen=True)
class CifarArrays(TrainingData):
    """A CIFAR dataset in memory: uint8 NHWC images and int64 labels of the train and test splits,
    and where they came from (``origin``: the embedded sample, the archive or folder, the tfds
    data dir). Build it with ``make_arrays``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    label_names: tuple[str, ...]
    origin: str = ""

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
        return "cifar100" if self.name == "cifar100" else "cifar10"

    def _train_feed(self, batch: int, augment: bool, input_context: Any, plan: dict) -> Any:
        # The feed is split over workers by tf.distribute (by data): no input context to use.
        plan = ArrayPlan.make(self.x_train, self.y_train, batch, augment=augment, **plan)
        return feed().train_batches(plan)

    def eval_batches(self, recipe: recipes.Recipe, batch: int) -> Any:
        classes = self._classes(recipe)
        return feed().eval_batches(self.x_test, self.y_test, batch, classes=classes)

    def holdout(self, fraction: float) -> CifarArrays:
        """The last ``fraction`` of the training images as the test split (the papers' 45k/5k)."""
        count = round(len(self.x_train) * fraction)
        if not 0 < count < len(self.x_train):
            raise UserError(
                f"--validation-split {fraction} leaves no training or no validation images out of "
                f"{len(self.x_train)}"
            )
        x, y = self.x_train, self.y_train
        return dataclasses.replace(
            self, x_train=x[:-count], y_train=y[:-count], x_test=x[-count:], y_test=y[-count:]
        )


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
    messages and ``CifarArrays.origin`` name it)."""
    num_classes = len(label_names)
    arrays = []
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
        arrays += [np.ascontiguousarray(x), y.astype(np.int64)]
    return CifarArrays(name, *arrays, label_names=tuple(label_names), origin=origin)
