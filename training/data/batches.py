"""What the training pipeline trains on, and the contract of the batches fed to it.

``TrainingData`` is a data source of the pipeline: ``training.data.cifar.arrays.CifarArrays`` (CIFAR in
memory) and ``training.data.images.dataset.ImageData`` (folders of images and tfds ``imagenet2012``,
streamed from disk).

The CIFAR feeds (``training.data.cifar.feed_tf``: tf.data, the TensorFlow backend;
``training.data.cifar.feed_numpy``: a Keras ``PyDataset``, the other backends, so JAX trains without
TensorFlow installed) turn arrays into batches under one contract, checked here (``TrainPlan``). The whole
training set stays in memory; each epoch is one shuffle keyed by (seed, epoch), cut into full global
batches; each batch is padded by 4 pixels of the mean colour, randomly cropped back to 32x32 and randomly
flipped, keyed by (seed, epoch, step). So epoch ``e`` depends only on ``(seed, e)``: a run resumed at
epoch ``k`` sees exactly what the uninterrupted run saw, however many replicas split the batch.
Standardisation is not done here: it is the model's first layer, so saved models take raw pixels. (The two
feeds draw from different random generators: the same seed gives each its own, reproducible, stream.)
The image feed (``training.data.images.feed``) keeps the same contract for encoded images.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from keras_preact.command_line import UserError
from training import recipes

PAD = 4
"""Pixels padded on each side before the random crop (He et al. 2015, section 4.2)."""


class TrainingData(Protocol):
    """A data source of the training pipeline: its splits' sizes, the model input it needs, and the
    feeds of its training batches (endless, keyed by seed, epoch and step) and validation batches."""

    name: str
    label_names: tuple[str, ...]

    @property
    def num_classes(self) -> int: ...

    @property
    def num_train(self) -> int: ...

    @property
    def num_test(self) -> int: ...

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(height, width, channels)`` of the images the feeds yield."""
        ...

    @property
    def preprocessing(self) -> str:
        """The statistics (``keras_preact.DATASET_STATS``) the model standardises raw pixels with."""
        ...

    def train_batches(
        self,
        recipe: recipes.Recipe,
        *,
        seed: int,
        augment: bool = True,
        start_epoch: int = 0,
        skip: int = 0,
    ) -> Any: ...

    def eval_batches(self, recipe: recipes.Recipe, batch: int) -> Any: ...

    def holdout(self, fraction: float) -> TrainingData:
        """The same data with ``fraction`` of the training images as the validation split."""
        ...

    def describe(self) -> dict[str, Any]:
        """Plain data for ``metrics.json``."""
        ...


def steps_per_epoch(num_examples: int, global_batch: int) -> int:
    """Full global batches in one epoch (the remainder is dropped); ``UserError`` if there are none."""
    if global_batch < 1:
        raise UserError(f"batch size must be at least 1, got {global_batch}")
    steps = num_examples // global_batch
    if steps == 0:
        raise UserError(
            f"batch size {global_batch} is larger than the {num_examples} training examples"
        )
    return steps


def checked_split(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check a split's images (N, H, W, C) and labels (N,) before they go into a feed; int32 labels."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 4 or y.shape != (len(x),):
        raise UserError(
            f"expected images (N, H, W, C) and labels (N,), got {x.shape} and {y.shape}"
        )
    return x, y.astype(np.int32)


@dataclass(frozen=True)
class TrainPlan:
    """Everything a training feed needs, checked (build it with ``TrainPlan.make``)."""

    x: np.ndarray
    y: np.ndarray
    global_batch: int
    steps: int  # batches per epoch
    seed: int
    start_epoch: int
    skip: int
    augment: bool
    classes: int | None  # one-hot labels of this many classes; None: int32 labels
    fill: np.ndarray  # float32 per-channel mean of x: the padding colour

    @classmethod
    def make(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        global_batch: int,
        *,
        seed: int | None,
        start_epoch: int = 0,
        skip: int = 0,
        augment: bool = True,
        classes: int | None = None,
    ) -> TrainPlan:
        """The plan of an endless feed of full global batches: (float32 raw [0, 255] images, int32
        labels, or float32 one-hot labels when ``classes`` is given).

        Epoch ``e`` (counted from 0; the first batch yielded belongs to ``start_epoch``, after ``skip``
        batches of it) is a shuffle of the whole set keyed by ``(seed, e)``, cut into
        ``steps_per_epoch(len(x), global_batch)`` batches (the remainder is dropped); with ``augment``
        every image is padded by 4 pixels, randomly cropped back and randomly flipped horizontally,
        keyed by ``(seed, e, step)``. Use with ``model.fit(steps_per_epoch=...)`` and
        ``initial_epoch=start_epoch``. ``seed=None`` draws a random seed (correct, not reproducible).
        ``UserError`` with one line on bad input.

        The padding value is the per-channel mean of ``x``, not 0: the papers pad images whose mean
        has been subtracted with zeros, and here the mean is subtracted later by the model's first
        layer, so padding raw pixels with the mean is what makes the border exactly what the papers'
        border was (0 after normalisation) instead of a black frame the model would see as strongly
        negative inputs.
        """
        x, y = checked_split(x, y)
        if x.dtype != np.uint8:
            raise UserError(f"training images must be uint8 raw pixels, got {x.dtype}")
        steps = steps_per_epoch(len(x), global_batch)
        if start_epoch < 0:
            raise UserError(f"start epoch must be 0 or more, got {start_epoch}")
        if skip < 0:
            raise UserError(f"batches to skip must be 0 or more, got {skip}")
        seed = secrets.randbits(31) if seed is None else int(seed)
        # Exact integer sums: float32 accumulation saturates on 50k images, and einsum is ~3x faster
        # than mean.
        fill = np.einsum("nhwc->c", x, dtype=np.int64) / (x.size // x.shape[-1])
        fill = fill.astype(np.float32)
        return cls(x, y, global_batch, steps, seed, start_epoch, skip, augment, classes, fill)


def checked_eval_split(x: np.ndarray, y: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Check the arguments of an evaluation feed: the split in order, in batches of ``batch``
    (float32 raw [0, 255] images, int32 labels or float32 one-hot ones), the last batch possibly
    smaller so that every example is evaluated."""
    x, y = checked_split(x, y)
    if batch < 1:
        raise UserError(f"batch size must be at least 1, got {batch}")
    return x, y
