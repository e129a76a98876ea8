"""Image data for training: a folder of images (``training.data.images.folder``) or tfds
``imagenet2012`` (``training.data.images.imagenet_tfds``), fed by ``training.data.images.feed``.

``load`` reads the images of checked ``ImageOptions`` into an ``ImageData``, the data source the
pipeline trains on (``training.data.batches.TrainingData``, as CIFAR's arrays are).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keras_preact.command_line import UserError
from training import recipes
from training.data.batches import steps_per_epoch
from training.data.images import feed
from training.data.images.folder import Split, hold_out, scan
from training.data.images.imagenet_tfds import load_imagenet
from training.data.images.options import PREPROCESSING, CheckedImages, ImageOptions


@dataclass(frozen=True)
class ImageData:
    """Training and validation images, and how the feed crops and augments them (a data source
    of ``training.run.pipeline``: see ``training.data.batches.TrainingData``)."""

    name: str
    train: Any  # feed.ImageSource
    val: Any
    label_names: tuple[str, ...]
    image_size: int
    augmentation: str
    color_augment: bool
    origin: str  # where the images come from, for messages and metrics.json
    preprocessing: str = PREPROCESSING

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @property
    def num_train(self) -> int:
        return self.train.count

    @property
    def num_test(self) -> int:
        return self.val.count

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, 3)

    def train_batches(
        self,
        recipe: recipes.Recipe,
        *,
        seed: int,
        augment: bool = True,
        start_epoch: int = 0,
        skip: int = 0,
        input_context: Any = None,
    ) -> Any:
        """The endless training feed (``training.data.images.feed.train_batches``); with a
        ``tf.distribute.InputContext``, this worker's share of every global batch."""
        plan = feed.ImagePlan(
            global_batch=recipe.batch_size,
            steps=steps_per_epoch(self.num_train, recipe.batch_size),
            seed=seed,
            start_epoch=start_epoch,
            skip=skip,
            augment=(
                feed.Augment.make(self.image_size, self.augmentation, lighting=self.color_augment)
                if augment
                else None
            ),
            image_size=self.image_size,
            classes=self.num_classes if recipes.one_hot_labels(recipe) else None,
            input_context=input_context,
        )
        return feed.train_batches(self.train, plan)

    def eval_batches(self, recipe: recipes.Recipe, batch: int) -> Any:
        """The validation images' centre views in order (``training.data.images.feed.eval_batches``)."""
        classes = self.num_classes if recipes.one_hot_labels(recipe) else None
        return feed.eval_batches(self.val, self.image_size, batch, classes=classes)

    def holdout(self, fraction: float) -> ImageData:
        """Train on all but ``fraction`` of each class's training images, validate on those."""
        if not isinstance(self.train, feed.FileImages):
            raise UserError("a validation split of the training images needs a folder of images")
        kept, held = hold_out(Split(self.train.paths, self.train.label_array), fraction)
        return dataclasses.replace(
            self,
            train=feed.FileImages(kept.files, kept.labels),
            val=feed.FileImages(held.files, held.labels),
        )

    def describe(self) -> dict[str, Any]:
        """Plain data for ``metrics.json``."""
        return {
            "source": self.origin,
            "train_examples": self.num_train,
            "test_examples": self.num_test,
            "classes": self.num_classes,
            "label_names": list(self.label_names),
            "image_size": self.image_size,
            "augmentation": self.augmentation,
            "color_augment": self.color_augment,
        }


def load(
    images: ImageOptions | CheckedImages,
    *,
    data_dir: str | None = None,
    log: Callable[[str], None] = print,
) -> ImageData:
    """Scan the folder (or open tfds ``imagenet2012``) of ``images`` (checked here unless it is
    already: ``ImageOptions.check``) into the data source; ``log`` gets the scan's one-line
    report. ``UserError`` for any problem with the data."""
    checked = images if isinstance(images, CheckedImages) else images.check()
    options = checked.options
    common = dict(
        image_size=checked.image_size,
        augmentation=options.augmentation,
        color_augment=options.color_augment,
    )
    if options.tfds_name is not None:
        train, val, names, origin = load_imagenet(data_dir, options.manual_dir)
        log(
            f"data: {origin}: {len(names)} classes, {train.count:,} training images, "
            f"{val.count:,} validation images"
        )
        return ImageData(options.tfds_name, train, val, names, origin=origin, **common)
    if data_dir:
        raise UserError("--data-dir applies to --data tfds:imagenet2012, not to a folder")
    found = scan(
        options.data,
        val_split=options.val_split,
        skip_bad_images=options.skip_bad_images,
        log=log,
    )
    if not len(found.val):
        raise UserError(
            f"{found.root} has no validation images: add a val/ folder with the same class "
            "folders, or hold out part of the training images with --val-split 0.1"
        )
    log(f"data: {found.summary()}")
    return ImageData(
        found.root.name,
        feed.FileImages(found.train.files, found.train.labels),
        feed.FileImages(found.val.files, found.val.labels),
        found.class_names,
        origin=str(found.root),
        **common,
    )
