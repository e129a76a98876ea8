"""CIFAR's tf.data feed, on the TensorFlow backend (the contract is in ``training.data.batches``).

Every epoch is a stateless shuffle of the indices; each global batch is gathered, then padded,
cropped and flipped, all vectorised over the batch with stateless random ops keyed by
(seed, epoch, step), so ``tf.distribute`` may split the batch over any number of replicas.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from training.data import tf_shared
from training.data.batches import PAD, ArrayPlan, check_batch, checked_split


def _pad_crop_flip(images: tf.Tensor, key: tf.Tensor, fill: tf.Tensor) -> tf.Tensor:
    """Pad a float batch by ``PAD`` pixels of ``fill``, take a random same-size crop, flip half of it:
    one gather along rows and one along columns for the whole batch (no per-image ops)."""
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


def train_batches(plan: ArrayPlan) -> tf.data.Dataset:
    """The endless training feed ``plan`` describes (see ``ArrayPlan.make``), as a tf.data dataset."""
    steps, num, global_batch = plan.steps, len(plan.x), plan.global_batch
    fill = tf.constant(plan.fill, tf.float32)
    images, labels = tf.constant(plan.x), tf.constant(plan.y)
    base_seed = tf.constant(plan.seed, tf.int64)

    def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
        key = tf.stack([base_seed, epoch])
        order = tf.random.experimental.stateless_shuffle(
            tf.range(num), seed=tf.random.experimental.stateless_fold_in(key, 0)
        )
        order = tf.reshape(order[: steps * global_batch], [steps, global_batch])
        return tf.data.Dataset.from_tensor_slices(
            (tf.fill([steps], epoch), tf.range(steps, dtype=tf.int64), order)
        )

    def load_batch(epoch: tf.Tensor, step: tf.Tensor, index: tf.Tensor):
        batch = tf.cast(tf.gather(images, index), tf.float32)
        if plan.augment:
            key = tf.random.experimental.stateless_fold_in(tf.stack([base_seed, epoch]), step + 1)
            batch = _pad_crop_flip(batch, key, fill)
        return batch, tf_shared.labels(tf.gather(labels, index), plan.classes)

    ds = tf.data.Dataset.counter(plan.start_epoch).flat_map(epoch_batches)
    if plan.skip:
        ds = ds.skip(plan.skip)
    ds = ds.map(load_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(tf_shared.options())


def eval_batches(
    x: np.ndarray, y: np.ndarray, batch: int, *, classes: int | None = None
) -> tf.data.Dataset:
    """The split in order, in batches of ``batch`` (the last may be smaller), cached in memory."""
    check_batch(batch)
    x, y = checked_split(x, y)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache()
    ds = ds.map(
        lambda im, lab: (tf.cast(im, tf.float32), tf_shared.labels(lab, classes)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.prefetch(tf.data.AUTOTUNE).with_options(tf_shared.options())
