"""The tf.data feed of encoded images (files of a folder, or tfds records): decode, augment, batch.

Images are read and decoded on the fly, in parallel; nothing is held in memory but the batches ahead. The
contract is ``training.data.batches``': the crop, flip and colour of the ``k``-th image of epoch ``e`` are
keyed by ``(seed, e, k)``. Training augmentations (``Augment.kind``), lengths at the papers' 224 crop
(they scale with ``image_size``):

* ``scale`` (He et al. 2015, sec. 3.4): the shorter side resized to a random length in [256, 480], a
  random 224x224 crop, a random horizontal flip, and AlexNet's PCA colour augmentation (``lighting``,
  Krizhevsky et al. 2012). Only the crop's window is decoded (JPEG) and resized, which is the same as
  resizing the whole image first.
* ``inception`` (He et al. 2016 for ResNet-200, from Szegedy et al. 2015): a random window of 8-100 % of
  the image's area and aspect ratio in [3/4, 4/3], resized to 224x224, flip, lighting.
* ``none``: the evaluation view (shorter side 256, central 224 crop).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from keras_preact import image_limits
from keras_preact.command_line import UserError
from keras_preact.image_views import center
from training.choices import AUGMENTATIONS
from training.data import tf_shared
from training.data.batches import Plan, check_batch
from training.data.images.augmentation import (
    LIGHTING_STD,
    PCA_EIGENVALUES,
    PCA_EIGENVECTORS,
    SCALE_RANGE,
    scale_range,
)

INCEPTION_AREA = (0.08, 1.0)
INCEPTION_RATIO = (3 / 4, 4 / 3)


@dataclass(frozen=True)
class Augment:
    """A training augmentation (see the module docstring); ``scale_range`` in pixels at
    ``image_size``."""

    image_size: int
    kind: str = "scale"
    scale_range: tuple[int, int] = SCALE_RANGE
    flip: bool = True
    lighting: float = LIGHTING_STD

    @classmethod
    def make(cls, image_size: int, kind: str = "scale", *, lighting: bool = True) -> Augment:
        """The augmentation ``kind`` (one of ``training.choices.AUGMENTATIONS``) at crop
        ``image_size``; ``ValueError`` for another kind."""
        if kind not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {kind!r}: choose one of {AUGMENTATIONS}")
        return cls(
            image_size,
            kind,
            scale_range(image_size),
            flip=kind != "none",
            lighting=LIGHTING_STD if lighting and kind != "none" else 0.0,
        )


def decode(data: tf.Tensor) -> tf.Tensor:
    """uint8 ``(H, W, 3)`` RGB of an encoded JPEG, PNG, BMP, GIF (first frame) or WebP image;
    grayscale, palette, 16-bit and CMYK images are converted."""
    image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
    return tf.ensure_shape(image, [None, None, 3])


def decode_check(path: tf.Tensor, index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``(index, decoded shape)`` of the file at ``path``, an error when it cannot be decoded or is
    over ``keras_preact.image_limits``' pixels (by its header): the scan's check. JPEGs decode at
    1/8 scale, which still reads the whole file; the shape keeps graph optimisation from dropping
    the decoding."""
    data = tf.io.read_file(path)
    with tf.control_dependencies([image_limits.assert_within(data, image_limits.max_pixels())]):
        data = tf.identity(data)
    shape = tf.cond(
        tf.io.is_jpeg(data),
        lambda: tf.shape(tf.io.decode_jpeg(data, channels=3, ratio=8)),
        lambda: tf.shape(decode(data)),
    )
    return index, shape


def decode_window(data: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """uint8 pixels of ``window`` = ``(top, left, height, width)``; a JPEG decodes only that window."""
    return tf.cond(
        tf.io.is_jpeg(data),
        lambda: tf.ensure_shape(
            tf.image.decode_and_crop_jpeg(data, window, channels=3), [None, None, 3]
        ),
        lambda: decode(data)[window[0] : window[0] + window[2], window[1] : window[1] + window[3]],
    )


def _keys(key: tf.Tensor, count: int) -> list[tf.Tensor]:
    return [tf.random.experimental.stateless_fold_in(key, i) for i in range(count)]


def scale_window(shape: tf.Tensor, key: tf.Tensor, augment: Augment) -> tf.Tensor:
    """The ``scale`` augmentation's crop as a window of the original image: with the shorter side
    resized to ``R``, uniform in ``augment.scale_range``, it covers ``crop * short / R`` pixels."""
    k_scale, k_top, k_left = _keys(key, 3)
    low, high = augment.scale_range
    target = tf.random.stateless_uniform([], k_scale, low, high + 1, dtype=tf.int32)
    height, width = shape[0], shape[1]
    short = tf.minimum(height, width)
    side = tf.round(augment.image_size * tf.cast(short, tf.float32) / tf.cast(target, tf.float32))
    side = tf.clip_by_value(tf.cast(side, tf.int32), 1, short)
    top = _uniform_int(k_top, height - side + 1)
    left = _uniform_int(k_left, width - side + 1)
    return tf.stack([top, left, side, side])


def inception_window(shape: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    """The ``inception`` augmentation's window (area and aspect ratio at random; the whole image
    when ten draws fail)."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.concat([shape, [3]], axis=0),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=key,
        min_object_covered=0.1,
        aspect_ratio_range=INCEPTION_RATIO,
        area_range=INCEPTION_AREA,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return tf.stack([begin[0], begin[1], size[0], size[1]])


def _uniform_int(key: tf.Tensor, count: tf.Tensor) -> tf.Tensor:  # in [0, count)
    return tf.random.stateless_uniform([], key, 0, tf.maximum(count, 1), dtype=tf.int32)


def lighting_noise(key: tf.Tensor, std: float) -> tf.Tensor:
    """AlexNet's PCA colour noise in raw pixel units: ``V (alpha * lambda) * 255`` with
    ``alpha ~ N(0, std)`` per eigenvector."""
    alpha = tf.random.stateless_normal([3], key, stddev=std)
    vectors = tf.constant(PCA_EIGENVECTORS, tf.float32)
    return tf.linalg.matvec(vectors, alpha * tf.constant(PCA_EIGENVALUES, tf.float32)) * 255.0


def train_image(data: tf.Tensor, key: tf.Tensor, augment: Augment) -> tf.Tensor:
    """float32 ``(S, S, 3)``: one augmented training view of an encoded image."""
    size = augment.image_size
    if augment.kind == "none":
        return eval_image(data, size)
    k_window, k_flip, k_light = _keys(key, 3)
    shape = tf.cond(  # JPEGs' from their header
        tf.io.is_jpeg(data),
        lambda: tf.image.extract_jpeg_shape(data)[:2],
        lambda: tf.shape(decode(data))[:2],
    )
    if augment.kind == "scale":
        window = scale_window(shape, k_window, augment)
    else:
        window = inception_window(shape, k_window)
    pixels = decode_window(data, window)
    image = tf.image.resize(tf.cast(pixels, tf.float32), [size, size], "bilinear", antialias=True)
    if augment.flip:
        flip = tf.random.stateless_uniform([], k_flip) < 0.5
        image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
    if augment.lighting:
        image = image + lighting_noise(k_light, augment.lighting)
    return tf.ensure_shape(image, [size, size, 3])


def eval_image(data: tf.Tensor, image_size: int) -> tf.Tensor:
    """float32 ``(S, S, 3)``: the ``center`` protocol's view of an encoded image."""
    return tf.ensure_shape(center(decode(data), image_size)[0], [image_size] * 2 + [3])


class ImageSource:
    """Encoded images and their labels: ``epoch(seed, epoch)`` (the split in that epoch's order)
    and ``ordered()`` yield ``(payload, label)``, a file path (``reads_files``) or encoded bytes."""

    reads_files: bool = True
    count: int

    def read(self, payload: tf.Tensor) -> tf.Tensor:
        return tf.io.read_file(payload) if self.reads_files else payload


class FileImages(ImageSource):
    """Image files (absolute paths) and their int64 class indices, e.g. one split of a folder; epoch
    ``e`` is a stateless shuffle keyed by ``(seed, e)``."""

    def __init__(self, files: Sequence[str], labels: np.ndarray):
        self.files, self.labels = tuple(files), np.asarray(labels, np.int64)
        self.count = len(self.files)

    def __len__(self) -> int:
        return self.count

    def subset(self, keep: np.ndarray) -> FileImages:
        return FileImages([self.files[i] for i in keep], self.labels[keep])

    @functools.cached_property
    def _tensors(self) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.init_scope():  # made once, eagerly, whichever graph asks first
            return tf.constant(self.files, tf.string), tf.constant(self.labels.astype(np.int32))

    def epoch(self, seed: tf.Tensor, epoch: tf.Tensor) -> tf.data.Dataset:
        key = tf.random.experimental.stateless_fold_in(tf.stack([seed, epoch]), 0)
        order = tf.random.experimental.stateless_shuffle(tf.range(self.count), seed=key)
        files, labels = self._tensors
        return tf.data.Dataset.from_tensor_slices(
            (tf.gather(files, order), tf.gather(labels, order))
        )

    def ordered(self) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices(self._tensors)


class RecordImages(ImageSource):
    """Encoded images from a tf.data dataset of ``(bytes, label)`` (tfds records). Epoch ``e`` is
    the dataset through a shuffle buffer of ``buffer`` images seeded by ``(seed, e)``."""

    reads_files = False

    def __init__(self, dataset: tf.data.Dataset, count: int, *, buffer: int = 10_000):
        self.dataset, self.count, self.buffer = dataset, count, buffer

    def epoch(self, seed: tf.Tensor, epoch: tf.Tensor) -> tf.data.Dataset:
        return self.dataset.shuffle(min(self.buffer, self.count), seed=seed * 100_003 + epoch)

    def ordered(self) -> tf.data.Dataset:
        return self.dataset


@dataclass(frozen=True, kw_only=True)
class ImagePlan(Plan):
    """A ``Plan`` of images: ``augment`` (None: the evaluation view) at ``image_size``;
    ``input_context``: ``tf.distribute``'s."""

    augment: Augment | None = None
    image_size: int = 224
    input_context: Any = None


def train_batches(source: ImageSource, plan: ImagePlan) -> tf.data.Dataset:
    """The endless training feed ``plan`` describes. With ``plan.input_context`` worker ``w`` of
    ``W`` decodes only positions ``[w B/W, (w+1) B/W)`` of every global batch ``B``, in
    per-replica batches."""
    per_epoch = plan.steps * plan.global_batch
    if per_epoch > source.count:
        raise UserError(
            f"{plan.steps} batches of {plan.global_batch} need {per_epoch} images, "
            f"there are {source.count}"
        )
    seed = tf.constant(plan.seed, tf.int64)

    def load(key: tf.Tensor, item: tuple[tf.Tensor, tf.Tensor]):
        data, label = source.read(item[0]), tf_shared.labels(item[1], plan.classes)
        if plan.augment is None:
            return eval_image(data, plan.image_size), label
        return train_image(data, key, plan.augment), label

    def epoch_items(epoch: tf.Tensor) -> tf.data.Dataset:
        items = source.epoch(seed, epoch).take(per_epoch)
        keys = tf.data.Dataset.range(per_epoch).map(
            lambda k: tf.random.experimental.stateless_fold_in(tf.stack([seed, epoch]), k + 1)
        )
        return tf.data.Dataset.zip(keys, items)

    ds = tf.data.Dataset.counter(plan.start_epoch, dtype=tf.int64).flat_map(epoch_items)
    if plan.skip:
        ds = ds.skip(plan.skip * plan.global_batch)
    batch = plan.global_batch
    context = plan.input_context
    if context is not None and context.num_input_pipelines > 1:
        workers, worker = context.num_input_pipelines, context.input_pipeline_id
        if plan.global_batch % workers:
            raise UserError(
                f"global batch {plan.global_batch} does not split evenly over {workers} workers"
            )
        share = plan.global_batch // workers
        ds = ds.enumerate().filter(lambda k, item: (k % plan.global_batch) // share == worker)
        ds = ds.map(lambda k, item: item)
    if context is not None:
        batch = context.get_per_replica_batch_size(plan.global_batch)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch, drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(
        tf_shared.options(sharded=context is not None)
    )


def eval_batches(
    source: ImageSource,
    image_size: int,
    batch: int,
    *,
    classes: int | None = None,
    cache_bytes: int = 512 << 20,
) -> tf.data.Dataset:
    """Every image's ``center`` view in order, in batches of ``batch`` (the last may be smaller),
    cached in memory when the views take less than ``cache_bytes``."""
    check_batch(batch)

    def load(payload: tf.Tensor, label: tf.Tensor):
        return eval_image(source.read(payload), image_size), tf_shared.labels(label, classes)

    ds = source.ordered().map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch)
    if source.count * image_size * image_size * 3 * 4 <= cache_bytes:
        ds = ds.cache()
    return ds.prefetch(tf.data.AUTOTUNE).with_options(tf_shared.options())
