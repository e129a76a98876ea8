"""CIFAR data for training: load the arrays from a source, and the contract of the batches fed from them.

``TrainingData`` is what the pipeline trains on: ``CifarArrays`` here, and ``training.image_data``'s
``ImageData`` (folders of images and tfds ``imagenet2012``, streamed from disk).

Sources (``load_arrays``): ``tfds`` (tensorflow_datasets, see ``training.tfds_source``), ``folder:PATH``
(the official CIFAR archives or their extracted folders, see ``training.cifar_archives``) and the embedded
``cifar10-sample``. Nothing falls back to the sample when real data is missing: that is an error.

Feeds: ``training.feed_tf`` (tf.data, the TensorFlow backend) and ``training.feed_numpy`` (a Keras
``PyDataset``, the other backends: JAX trains without TensorFlow installed) turn the arrays into batches
under one contract. The whole training set stays in memory; each epoch is one shuffle keyed by
(seed, epoch), cut into full global batches; each batch is padded by 4 pixels of the mean colour,
randomly cropped back to 32x32 and randomly flipped, keyed by (seed, epoch, step). So epoch ``e`` depends
only on ``(seed, e)``: a run resumed at epoch ``k`` sees exactly what the uninterrupted run saw, however
many replicas split the batch. Standardisation is not done here: it is the model's first layer, so saved
models take raw pixels. (The two feeds draw from different random generators: the same seed gives each
its own, reproducible, stream.)
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from keras_preact.cli import UserError
from training import recipes

DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "cifar10-sample")
"""Dataset names ``load_arrays`` accepts."""

SOURCES_HELP = "tfds or folder:PATH"
"""What ``load_arrays(source=...)`` accepts, for messages and CLI help."""

DEFAULT_SOURCES: dict[str, str | None] = {
    "cifar10": "tfds",
    "cifar100": "tfds",
    "cifar10-sample": None,
}
"""The source ``load_arrays`` reads each dataset from when none is given (the embedded sample takes
none)."""

SAMPLE_ORIGIN = "embedded sample (keras_preact/datasets/cifar10_sample.npz)"
"""Where ``cifar10-sample``'s images come from (``CifarArrays.source``)."""

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


PREPROCESSING = {"cifar10": "cifar10", "cifar100": "cifar100", "cifar10-sample": "cifar10"}
"""The per-channel statistics the model's first layer standardises with, per dataset."""


def feed() -> Any:
    """The input feed of the Keras backend in use: ``training.feed_tf`` (tf.data) on TensorFlow,
    ``training.feed_numpy`` (PyDataset, no TensorFlow needed) on the others."""
    import keras

    if keras.backend.backend() == "tensorflow":
        from training import feed_tf

        return feed_tf
    from training import feed_numpy

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


def load_arrays(
    dataset: str,
    source: str | None = None,
    data_dir: str | None = None,
    *,
    verify_checksums: bool = True,
) -> CifarArrays:
    """Load ``dataset`` (one of ``DATASETS``) from ``source`` into memory.

    ``source`` is ``None`` (the dataset's ``DEFAULT_SOURCES``), ``"tfds"`` (honours ``data_dir``,
    else ``TFDS_DATA_DIR``, else ``~/tensorflow_datasets``; fails fast when the dataset is not
    prepared there and its download host is unreachable) or ``"folder:PATH"`` (an official CIFAR archive, its extracted folder, or a folder holding either).
    ``verify_checksums`` applies to ``folder:``: turn it off for partial or re-packed copies (structure is
    always validated). ``cifar10-sample`` is the embedded sample and takes no source or data_dir.
    Raises ``UserError`` with one line on any bad input.
    """
    name = dataset.strip().lower()
    if name not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    if name == "cifar10-sample":
        if source is not None or data_dir:
            raise UserError(
                "cifar10-sample is the embedded sample: it takes no data source or data dir"
            )
        from keras_preact.datasets import load_sample

        s = load_sample()
        return make_arrays(
            name, s.x_train, s.y_train, s.x_test, s.y_test, s.label_names, origin=SAMPLE_ORIGIN
        )
    source = DEFAULT_SOURCES[name] if source is None else source
    kind, _, path = source.partition(":")
    if (kind, path) != ("tfds", "") and not (kind == "folder" and path):
        raise UserError(f"unknown data source {source!r}: use {SOURCES_HELP}")
    if kind == "folder":
        if data_dir:
            raise UserError(
                f"the data dir {data_dir!r} applies to the tfds source only, not {source!r}"
            )
        from training.cifar_archives import load_folder

        return load_folder(name, Path(path).expanduser(), verify_checksums=verify_checksums)
    from training.tfds_source import load_tfds

    return load_tfds(name, data_dir)


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
