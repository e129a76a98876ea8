"""CIFAR data for training: load the arrays from a source, then feed them through tf.data.

Sources (``load_arrays``): ``tfds`` (tensorflow_datasets, see ``training.tfds_source``), ``folder:PATH``
(the official CIFAR archives or their extracted folders, see ``training.cifar_archives``) and the embedded
``cifar10-sample``. Nothing falls back to the sample when real data is missing: that is an error.

Pipeline (``make_train_dataset``): the whole training set stays in memory (it is the cache); each epoch is one
stateless shuffle of the indices keyed by (seed, epoch); each global batch is gathered, then padded by 4 pixels,
randomly cropped back to 32x32 and randomly flipped, all vectorised over the batch with stateless random ops
keyed by (seed, epoch, step). So epoch ``e`` depends only on ``(seed, e)``: a run resumed at epoch ``k`` sees
exactly what the uninterrupted run saw, however many replicas ``tf.distribute`` splits the batch over.
Standardisation is not done here: it is the model's first layer, so saved models take raw pixels.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from training.errors import UserError
from training.sample import LABEL_NAMES as CIFAR10_LABELS

DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "cifar10-sample")
"""Dataset names ``load_arrays`` accepts."""

SOURCES_HELP = "tfds or folder:PATH"
"""What ``load_arrays(source=...)`` accepts, for messages and CLI help."""

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

PAD = 4
"""Pixels padded on each side before the random crop (He et al. 2015, section 4.2)."""


@dataclass(frozen=True)
class CifarArrays:
    """A CIFAR dataset in memory: uint8 NHWC images and int64 labels for the train and test splits."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    label_names: tuple[str, ...]


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
    """Check what a source produced and wrap it; ``origin`` names the source in the error message."""
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
    )


def load_arrays(
    dataset: str,
    source: str = "tfds",
    data_dir: str | None = None,
    *,
    verify_checksums: bool = True,
) -> CifarArrays:
    """Load ``dataset`` (one of ``DATASETS``) from ``source`` into memory.

    ``source`` is ``"tfds"`` (honours ``data_dir``, else ``TFDS_DATA_DIR``, else ``~/tensorflow_datasets``;
    fails fast when the dataset is not prepared there and its download host is unreachable) or
    ``"folder:PATH"`` (an official CIFAR archive, its extracted folder, or a folder holding either).
    ``verify_checksums`` applies to ``folder:``: turn it off for partial or re-packed copies (structure is
    always validated). ``cifar10-sample`` is the embedded sample and takes no source or data_dir.
    Raises ``UserError`` with one line on any bad input.
    """
    name = dataset.strip().lower()
    if name not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    kind, _, path = source.partition(":")
    if (kind, path) != ("tfds", "") and not (kind == "folder" and path):
        raise UserError(f"unknown data source {source!r}: use {SOURCES_HELP}")
    if name == "cifar10-sample":
        if kind != "tfds" or data_dir:
            raise UserError(
                "cifar10-sample is the embedded sample: it takes no data source or data dir"
            )
        from training.sample import load_sample

        s = load_sample()
        return make_arrays(
            name, s.x_train, s.y_train, s.x_test, s.y_test, s.label_names, origin="embedded sample"
        )
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


def _checked_split(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check a split's images (N, H, W, C) and labels (N,) before they go into a pipeline."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 4 or y.shape != (len(x),):
        raise UserError(
            f"expected images (N, H, W, C) and labels (N,), got {x.shape} and {y.shape}"
        )
    return x, y.astype(np.int32)


def _resolve_seed(seed: int | None) -> int:
    """A fixed seed, or a fresh random one: with ``None`` the run is correct but not reproducible."""
    return secrets.randbits(31) if seed is None else int(seed)


def _pad_crop_flip(images: tf.Tensor, key: tf.Tensor, fill: tf.Tensor) -> tf.Tensor:
    """Pad a float batch by ``PAD`` pixels of ``fill``, take a random same-size crop, flip half of it.

    One gather along rows and one along columns do the crop and the flip of the whole batch at once
    (no per-image ops), which is what keeps the pipeline far ahead of the model on a small CPU.
    """
    batch, height, width = images.shape[:3]  # static: the batch size is fixed (full batches only)
    paddings = [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]]
    # The border is 0 + fill and the inside is image + 0, so original pixels come through bit-exact.
    border = tf.pad(tf.zeros([1, height, width, 1]), paddings, constant_values=1.0) * fill
    padded = tf.pad(images, paddings) + border
    # One draw per image encodes the row offset, the column offset (0..2*PAD each) and the flip.
    span = 2 * PAD + 1
    draw = tf.random.stateless_uniform([batch], seed=key, maxval=span * span * 2, dtype=tf.int32)
    top, left, flip = draw % span, (draw // span) % span, draw // (span * span)
    rows = top[:, None] + tf.range(height)[None, :]
    cols = tf.range(width)[None, :]
    cols = left[:, None] + tf.where(flip[:, None] == 1, width - 1 - cols, cols)
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)


def make_train_dataset(
    x: np.ndarray,
    y: np.ndarray,
    global_batch: int,
    *,
    seed: int | None,
    start_epoch: int = 0,
    augment: bool = True,
) -> tf.data.Dataset:
    """An endless dataset of full global batches: (float32 raw [0, 255] images, int32 labels).

    Epoch ``e`` (counted from 0; the first batch yielded belongs to ``start_epoch``) is a shuffle of the whole
    set keyed by ``(seed, e)``, cut into ``steps_per_epoch(len(x), global_batch)`` batches (the remainder is
    dropped); with ``augment`` every image is padded by 4 pixels, randomly cropped back and randomly flipped
    horizontally, keyed by ``(seed, e, step)``. Use with ``model.fit(steps_per_epoch=...)`` and
    ``initial_epoch=start_epoch``. ``seed=None`` draws a random seed (correct, not reproducible).

    The padding value is the per-channel mean of ``x``, not 0: the papers pad images whose mean has been
    subtracted with zeros, and here the mean is subtracted later by the model's first layer, so padding raw
    pixels with the mean is what makes the border exactly what the papers' border was (0 after
    normalisation) instead of a black frame the model would see as strongly negative inputs.
    """
    x, y = _checked_split(x, y)
    if x.dtype != np.uint8:
        raise UserError(f"training images must be uint8 raw pixels, got {x.dtype}")
    steps = steps_per_epoch(len(x), global_batch)
    if start_epoch < 0:
        raise UserError(f"start epoch must be 0 or more, got {start_epoch}")
    base_seed = _resolve_seed(seed)
    # Exact integer sums: float32 accumulation saturates on 50k images, and einsum is ~3x faster than mean.
    fill = np.einsum("nhwc->c", x, dtype=np.int64) / (x.size // x.shape[-1])
    fill = tf.constant(fill, tf.float32)
    images, labels = tf.constant(x), tf.constant(y)
    num = len(x)

    def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
        key = tf.stack([tf.constant(base_seed, tf.int64), epoch])
        order = tf.random.experimental.stateless_shuffle(
            tf.range(num), seed=tf.random.experimental.stateless_fold_in(key, 0)
        )
        order = tf.reshape(order[: steps * global_batch], [steps, global_batch])
        return tf.data.Dataset.from_tensor_slices(
            (tf.fill([steps], epoch), tf.range(steps, dtype=tf.int64), order)
        )

    def load_batch(epoch: tf.Tensor, step: tf.Tensor, index: tf.Tensor):
        batch = tf.cast(tf.gather(images, index), tf.float32)
        if augment:
            key = tf.stack([tf.constant(base_seed, tf.int64), epoch])
            key = tf.random.experimental.stateless_fold_in(key, step + 1)
            batch = _pad_crop_flip(batch, key, fill)
        return batch, tf.gather(labels, index)

    ds = tf.data.Dataset.counter(start_epoch).flat_map(epoch_batches)
    ds = ds.map(load_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())


def make_eval_dataset(x: np.ndarray, y: np.ndarray, batch: int) -> tf.data.Dataset:
    """The split in order, in batches of ``batch``: (float32 raw [0, 255] images, int32 labels), cached.

    The last batch may be smaller, so that every example is evaluated.
    """
    x, y = _checked_split(x, y)
    if batch < 1:
        raise UserError(f"batch size must be at least 1, got {batch}")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache()
    ds = ds.map(lambda im, lab: (tf.cast(im, tf.float32), lab), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())


def _options() -> tf.data.Options:
    """Deterministic order; shard by data under multi-worker strategies (there are no files to shard)."""
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options
