"""The options of a run on images (``ImageOptions``, ``TrainConfig.images``), checked without reading the
images or importing TensorFlow (``ImageOptions.check``); ``images.dataset.load`` then reads the images."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keras_preact.command_line import UserError
from keras_preact.preprocessing import PREPROCESS_LAYER, normalization_to_add
from keras_preact.weights import is_named
from training import recipes
from training.choices import AUGMENTATIONS

TFDS_PREFIX = "tfds:"
TFDS_DATASETS = ("imagenet2012",)
"""What ``--data tfds:NAME`` accepts."""

DEFAULT_IMAGE_SIZE = 224
MAX_IMAGE_SIZE = 4096
"""The largest crop side a run takes (a batch of larger crops does not fit in memory)."""
PREPROCESSING = "imagenet"
"""The statistics the model's first layer standardises raw pixels with (ImageNet's)."""


@dataclass(frozen=True)
class ImageOptions:
    """A run on images. ``data``: a folder (``images.folder``) or ``tfds:imagenet2012``;
    ``manual_dir``: where tfds finds ImageNet's archives. ``image_size``: the square crop the
    network sees (default 224, or the input size of ``weights``). ``color_augment``: AlexNet's PCA
    lighting. ``weights``: a ``.keras`` file to fine-tune (its classifier is replaced), or published
    weights of the run's model (``keras_preact.list_weights``); ``preprocessing``: how it
    normalises raw pixels (``keras_preact.preprocessing``; None: ``auto``)."""

    data: str
    val_split: float | None = None
    skip_bad_images: bool = False
    image_size: int | None = None
    augmentation: str = "scale"
    color_augment: bool = True
    weights: str | None = None
    manual_dir: str | None = None
    preprocessing: str | None = None

    @property
    def tfds_name(self) -> str | None:
        return tfds_name(self.data)

    def identity(self) -> dict[str, Any]:
        """The options that decide the result (``manual_dir`` is only where archives are)."""
        settings = dataclasses.asdict(self)
        if self.preprocessing in (None, "auto"):  # as before the option: earlier runs resume
            del settings["preprocessing"]
        return {k: v for k, v in settings.items() if k != "manual_dir"}

    def check(self) -> CheckedImages:
        """These options checked, without reading the data (``UserError`` for any out of range, or
        without TensorFlow, which the image feed needs)."""
        require_tensorflow()
        if self.tfds_name is not None:
            if self.val_split is not None:
                raise UserError("--val-split applies to folders; imagenet2012 has its validation")
            if self.skip_bad_images:
                raise UserError("--skip-bad-images applies to folders, not tfds datasets")
        elif self.manual_dir:
            raise UserError("--manual-dir applies to --data tfds:imagenet2012, not to a folder")
        if self.val_split is not None and not 0 < self.val_split < 1:
            raise UserError(f"--val-split must be a fraction in (0, 1), got {self.val_split}")
        if (self.image_size or 32) < 32:
            raise UserError(f"--image-size must be at least 32 pixels, got {self.image_size}")
        if (self.image_size or 0) > MAX_IMAGE_SIZE:
            raise UserError(
                f"--image-size must be at most {MAX_IMAGE_SIZE} pixels, got {self.image_size}"
            )
        if self.augmentation not in AUGMENTATIONS:
            raise UserError(
                f"unknown augmentation {self.augmentation!r}: choose one of "
                f"{', '.join(AUGMENTATIONS)}"
            )
        size, normalization = self.image_size, None
        if self.weights is None:
            if self.preprocessing is not None:
                raise UserError(
                    "--preprocessing applies to the network of --weights (a new network "
                    f"normalises its input with {PREPROCESSING}'s statistics itself)"
                )
        elif is_named(self.weights):
            # Published weights bring their own preprocess layer (they set the normalisation).
            normalization = normalization_to_add(
                self.preprocessing or "auto", has_layer=True, model_name=self.weights
            )
        else:  # a .keras file: the crop is the size it takes unless given
            weights_size = keras_input_size(self.weights)
            if weights_size is not None and size is None and weights_size > MAX_IMAGE_SIZE:
                raise UserError(
                    f"--weights {self.weights} takes {weights_size}x{weights_size} images, more "
                    f"than the {MAX_IMAGE_SIZE} pixels a run takes: give a smaller --image-size"
                )
            size = size or weights_size
            normalization = normalization_to_add(
                self.preprocessing or "auto",
                has_layer=PREPROCESS_LAYER in keras_layer_names(self.weights),
                model_name=Path(self.weights).name,
            )
        return CheckedImages(self, size or DEFAULT_IMAGE_SIZE, normalization)


def tfds_name(data: str) -> str | None:
    """The tfds dataset ``--data tfds:NAME`` names (``UserError`` unless one of ``TFDS_DATASETS``),
    else None (a folder)."""
    if not data.startswith(TFDS_PREFIX):
        return None
    name = data.removeprefix(TFDS_PREFIX)
    if name not in TFDS_DATASETS:
        raise UserError(
            f"unknown tfds dataset {name!r} in --data {data}: use "
            f"{', '.join(TFDS_PREFIX + n for n in TFDS_DATASETS)} or a folder"
        )
    return name


@dataclass(frozen=True)
class CheckedImages:
    """``ImageOptions`` checked, the crop side resolved (``image_size``, else the input size of
    ``weights``, else 224); ``normalization``: the ``DATASET_STATS`` key put in front of
    ``weights``' network, None when it needs none."""

    options: ImageOptions
    image_size: int
    normalization: str | None = None


def check_recipe(options: ImageOptions | None, recipe: recipes.Recipe) -> None:
    """``UserError`` when the recipe's fine-tuning settings are given without ``--weights``."""
    tuned = recipe.freeze != "none" or recipe.backbone_lr_scale != 1.0
    if tuned and (options is None or options.weights is None):
        raise UserError(
            "--freeze and --backbone-lr-scale apply to fine-tuning: give the network to start "
            "from with --weights FILE.keras"
        )


def _keras_layers(path: str, option: str = "--weights") -> list[dict[str, Any]]:
    """The layer configurations in a ``.keras`` file's ``config.json`` (the model is not built);
    ``UserError`` naming ``option`` unless it is a readable ``.keras`` archive."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise UserError(f"{option} {path} is a folder, not a .keras model file")
    if not file.is_file():
        raise UserError(f"{option} {path}: file not found")
    try:
        if file.suffix != ".keras" or not zipfile.is_zipfile(file):
            raise UserError(f"{option} {path} is not a .keras model file (a zip archive)")
        with zipfile.ZipFile(file) as archive:
            config = json.loads(archive.read("config.json"))
        layers = config["config"]["layers"]
        if not isinstance(layers, list) or not all(isinstance(x, dict) for x in layers):
            raise TypeError("its layers are not a list of layer configurations")
    except (KeyError, ValueError, TypeError, OSError, zipfile.BadZipFile) as e:
        raise UserError(f"{option} {path} is not a readable .keras model file: {e}") from None
    return layers


def keras_layer_names(path: str, option: str = "--weights") -> set[str]:
    """The names of the top-level layers of a ``.keras`` file's model."""
    return {
        layer.get("name") or layer.get("config", {}).get("name")
        for layer in _keras_layers(path, option)
    }


def keras_input_size(path: str) -> int | None:
    """The square input size a ``.keras`` file's model takes (None when not fixed or square)."""
    inputs = [layer for layer in _keras_layers(path) if layer.get("class_name") == "InputLayer"]
    shape = (inputs[0].get("config", {}).get("batch_shape") or []) if inputs else []
    square = len(shape) == 4 and shape[1] == shape[2] and isinstance(shape[1], int)
    return int(shape[1]) if square else None


def require_tensorflow() -> None:
    """``UserError`` when TensorFlow cannot be imported: the image feed is tf.data."""
    if importlib.util.find_spec("tensorflow") is None:
        raise UserError(
            "training on images needs TensorFlow for its input pipeline (tf.data decodes and "
            "augments the images, also for the JAX backend): pip install tensorflow-cpu"
        )
