"""What the TensorFlow sides of the CIFAR and image data share: the labels and options of their tf.data
feeds (``cifar.feed_tf``, ``images.feed``) and tfds' builders (``cifar.from_tfds``, ``images.imagenet_tfds``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import tensorflow as tf

from keras_preact.command_line import UserError


def labels(label: tf.Tensor, classes: int | None) -> tf.Tensor:
    """int32 labels, or float32 one-hot ones of ``classes`` classes."""
    label = tf.cast(label, tf.int32)
    return label if classes is None else tf.one_hot(label, classes)


def options(*, sharded: bool = False) -> tf.data.Options:
    """Deterministic order; a feed that is not ``sharded`` already is split by data under
    multi-worker strategies (each worker keeps its part of every batch)."""
    opts = tf.data.Options()
    opts.deterministic = True
    policy = tf.data.experimental.AutoShardPolicy
    opts.experimental_distribute.auto_shard_policy = policy.OFF if sharded else policy.DATA
    return opts


def open_builder(name: str, data_dir: str | None) -> tuple[Any, Path, bool]:
    """``(builder, data dir, prepared)``: tfds' builder of dataset ``name`` in ``data_dir``, else
    ``$TFDS_DATA_DIR`` (read here: tfds reads it once, when imported), else ``~/tensorflow_datasets``,
    and whether the dataset is prepared there. Asks tfds to download nothing."""
    import tensorflow_datasets as tfds  # imported here: slow to import, and only tfds data needs it

    root = Path(data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets").expanduser()
    if root.exists() and not root.is_dir():
        raise UserError(f"tfds data dir {root} is not a directory")
    try:
        builder = tfds.builder(name, data_dir=str(root))
        prepared = builder.is_prepared()
    except OSError as e:
        raise UserError(f"cannot read the tfds data dir {root}: {e.strerror or e}") from None
    return builder, root, prepared
