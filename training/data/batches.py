"""The contract of the data a run trains on, kept by every source and feed.

``TrainingData`` is the base of the pipeline's data sources: ``cifar.arrays.CifarArrays`` (in memory) and
``images.dataset.ImageData`` (folders and tfds ``imagenet2012``, streamed from disk). Their training feeds
follow a ``Plan``: epoch ``e`` is an order of the training examples keyed by ``(seed, e)``, cut into full
global batches, and augmented with keys of ``(seed, e, k)`` (``k``: the batch or image), so a run resumed at
any batch sees exactly what the uninterrupted run saw, however many replicas split the batch. Feeds yield
float32 raw ``[0, 255]`` pixels (the model's first layer standardises them) and int32 labels, or float32
one-hot ones when the recipe's loss smooths them.

CIFAR is fed by ``cifar.feed_tf`` (tf.data) on TensorFlow and ``cifar.feed_numpy`` (a Keras ``PyDataset``,
its own random stream) on the other backends, so JAX trains without TensorFlow; images by ``images.feed``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_preact.command_line import UserError
from training import recipes

PAD = 4
"""Pixels padded on each side before CIFAR's random crop (He et al. 2015, section 4.2)."""


def check_batch(batch: int) -> None:
    if batch < 1:
        raise UserError(f"batch size must be at least 1, got {batch}")


def steps_per_epoch(num_examples: int, global_batch: int) -> int:
    """Full global batches in one epoch (the remainder is dropped); ``UserError`` for none."""
    check_batch(global_batch)
    steps = num_examples // global_batch
    if steps == 0:
        raise UserError(
            f"batch size {global_batch} is larger than the {num_examples} training examples"
        )
    return steps


@dataclass(frozen=True)
class Plan:
    """Which batches a training feed yields: ``steps`` full global batches per epoch, from batch
    ``skip`` of epoch ``start_epoch``, keyed by ``seed``; ``classes``: one-hot labels of this many
    classes (None: int32 labels). Use with ``model.fit(steps_per_epoch=steps,
    initial_epoch=start_epoch)``."""

    global_batch: int
    steps: int
    seed: int
    start_epoch: int = 0
    skip: int = 0
    classes: int | None = None

    @classmethod
    def make(
        cls,
        count: int,
        global_batch: int,
        *,
        seed: int | None,
        start_epoch: int = 0,
        skip: int = 0,
        classes: int | None = None,
        **fields: Any,
    ) -> Any:
        """The plan over ``count`` training examples, checked; ``seed=None``: a random one."""
        steps = steps_per_epoch(count, global_batch)
        if start_epoch < 0:
            raise UserError(f"start epoch must be 0 or more, got {start_epoch}")
        if skip < 0:
            raise UserError(f"batches to skip must be 0 or more, got {skip}")
        seed = secrets.randbits(31) if seed is None else int(seed)
        return cls(global_batch, steps, seed, start_epoch, skip, classes, **fields)


def checked_split(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A split's images (N, H, W, C) and labels (N,), checked; int32 labels."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 4 or y.shape != (len(x),):
        raise UserError(
            f"expected images (N, H, W, C) and labels (N,), got {x.shape} and {y.shape}"
        )
    return x, y.astype(np.int32)


@dataclass(frozen=True, kw_only=True)
class ArrayPlan(Plan):
    """A ``Plan`` over images in memory (CIFAR's feeds): uint8 images ``x``, labels ``y``; with
    ``augment`` every image is padded by ``PAD`` pixels of ``fill``, randomly cropped back and
    randomly flipped horizontally."""

    x: np.ndarray
    y: np.ndarray
    augment: bool = True
    fill: np.ndarray  # float32 per-channel mean of x: the padding colour

    @classmethod
    def make(  # type: ignore[override]
        cls, x: np.ndarray, y: np.ndarray, global_batch: int, *, augment: bool = True, **plan: Any
    ) -> ArrayPlan:
        """The plan of ``x`` and ``y`` (``Plan.make`` takes the rest), padded with the mean of ``x``:
        the papers pad mean-subtracted images with zeros, and here the model subtracts the mean."""
        x, y = checked_split(x, y)
        if x.dtype != np.uint8:
            raise UserError(f"training images must be uint8 raw pixels, got {x.dtype}")
        # Exact integer sums: float32 accumulation saturates on 50k images; einsum beats mean.
        fill = np.einsum("nhwc->c", x, dtype=np.int64) / (x.size // x.shape[-1])
        return super().make(
            len(x), global_batch, x=x, y=y, augment=augment, fill=fill.astype(np.float32), **plan
        )


class TrainingData:
    """A data source of the pipeline (a frozen dataclass): ``name``, ``label_names``, ``origin``,
    ``preprocessing`` (the ``keras_preact.DATASET_STATS`` key the model standardises with),
    ``num_train``, ``num_test``, ``input_shape`` (of the images the feeds yield) and its feeds."""

    name: str
    label_names: tuple[str, ...]
    origin: str

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def _classes(self, recipe: recipes.Recipe) -> int | None:  # one-hot labels for the loss
        return self.num_classes if recipes.one_hot_labels(recipe) else None

    def train_batches(
        self,
        recipe: recipes.Recipe,
        *,
        seed: int | None,
        augment: bool = True,
        start_epoch: int = 0,
        skip: int = 0,
        input_context: Any = None,
    ) -> Any:
        """Endless global batches of the training split for ``recipe`` (see ``Plan``); with a
        ``tf.distribute.InputContext`` (images), this worker's share of every global batch."""
        plan = dict(seed=seed, start_epoch=start_epoch, skip=skip, classes=self._classes(recipe))
        return self._train_feed(recipe.batch_size, augment, input_context, plan)

    def _train_feed(self, batch: int, augment: bool, input_context: Any, plan: dict) -> Any:
        raise NotImplementedError

    def eval_batches(self, recipe: recipes.Recipe, batch: int) -> Any:
        """The validation split in order, in batches of ``batch`` (the last possibly smaller),
        labelled for ``recipe``'s loss."""
        raise NotImplementedError

    def holdout(self, fraction: float) -> TrainingData:
        """The same data with ``fraction`` of the training images as the validation split."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:  # for metrics.json
        return {
            "source": self.origin,
            "train_examples": self.num_train,  # type: ignore[attr-defined]
            "test_examples": self.num_test,  # type: ignore[attr-defined]
            "classes": self.num_classes,
        }
