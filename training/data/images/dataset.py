"""Images as the data a run trains on: ``load`` reads the images of checked ``ImageOptions`` (a folder,
``images.folder``, or tfds ``imagenet2012``, ``images.imagenet_tfds``) into an ``ImageData``, fed by
``images.feed``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keras_preact.command_line import UserError
from training import recipes
from training.data.batches import TrainingData
from training.data.images import feed
from training.data.images.folder import hold_out, scan
from training.data.images.imagenet_tfds import load_imagenet
from training.data.images.options import PREPROCESSING, CheckedImages, ImageOptions


@dataclass(frozen=True)
class ImageData(TrainingData):
    """Training and validation images (``feed.ImageSource``), and how the feed crops and augments
    them; ``origin``: where they come from, for messages and ``metrics.json``."""

    name: str
    train: Any
    val: Any
    label_names: tuple[str, ...]
    image_size: int
    augmentation: str
    color_augment: bool
    origin: str
    preprocessing: str = PREPROCESSING

    @property
    def num_train(self) -> int:
        return self.train.count

    @property
    def num_test(self) -> int:
        return self.val.count

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, 3)

    def _train_feed(self, batch: int, augment: bool, input_context: Any, plan: dict) -> Any:
        size, kind = self.image_size, self.augmentation
        views = feed.Augment.make(size, kind, lighting=self.color_augment) if augment else None
        plan = feed.ImagePlan.make(
            self.num_train,
            batch,
            augment=views,
            image_size=size,
            input_context=input_context,
            **plan,
        )
        return feed.train_batches(self.train, plan)

    def eval_batches(self, recipe: recipes.Recipe, batch: int) -> Any:
        return feed.eval_batches(self.val, self.image_size, batch, classes=self._classes(recipe))

    def holdout(self, fraction: float) -> ImageData:
        """Train on all but ``fraction`` of each class's training images, validate on those."""
        if not isinstance(self.train, feed.FileImages):
            raise UserError("a validation split of the training images needs a folder of images")
        kept, held = hold_out(self.train, fraction)
        return dataclasses.replace(self, train=kept, val=held)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
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
    """The folder (or tfds ``imagenet2012``) of ``images`` (checked here unless it is already),
    scanned; ``log`` gets the scan's one-line report. ``UserError`` for any problem with it."""
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
        options.data, val_split=options.val_split, skip_bad_images=options.skip_bad_images, log=log
    )
    if not len(found.val):
        raise UserError(
            f"{found.root} has no validation images: add a val/ folder with the same class "
            "folders, or hold out part of the training images with --val-split 0.1"
        )
    log(f"data: {found.summary()}")
    return ImageData(
        found.root.name, found.train, found.val, found.class_names, origin=str(found.root), **common
    )
