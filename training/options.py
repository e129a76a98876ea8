"""The option groups of the training commands (``training.command_line.Command``), each an ``add_*``
function, and ``train_config``: parsed options as a ``training.run.pipeline.TrainConfig``. Recipe
options default to ``None`` (the recipe's value); the choices come from ``training.choices``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Plain data and the standard library only: --help and usage errors answer before TensorFlow loads.
from keras_preact.catalogue import DATASET_STATS, MODEL_NAMES, UNITS
from keras_preact.command_line import UserError
from training.choices import (
    AUGMENTATIONS,
    DATASETS,
    FREEZE_STAGES,
    GATED_WARMUP_MODES,
    IMAGE_RECIPES,
    JIT_MODES,
    PRECISIONS,
    RECIPES,
    SCHEDULES,
    STRATEGIES,
    VERBOSITY,
)

TFDS_DIR_HELP = "tfds data directory (default: TFDS_DATA_DIR or ~/tensorflow_datasets)"
NAMED_WEIGHTS_HELP = (
    "published weights of --model by name (imagenet, cifar10, cifar100 or e.g. "
    "torchvision:IMAGENET1K_V2; python -m keras_preact.weights lists them), fetched once"
)
PREPROCESSING_HELP = (
    "how the network normalises raw [0, 255] pixels: auto (default: its own 'preprocess' layer, "
    "required), none (it takes raw pixels), or the statistics it was trained with, put in front "
    f"of it: {', '.join(DATASET_STATS)}"
)


def finite_float(text: str) -> float:
    """An argparse ``type`` for a number option: a finite float (``inf`` and ``nan`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def comma_separated(kind: Callable[[str], Any]) -> Callable[[str], tuple[Any, ...]]:
    """An argparse ``type`` for ``A,B,...``: a non-empty tuple of ``kind`` values."""

    def parse(text: str) -> tuple[Any, ...]:
        try:
            values = tuple(kind(v.strip()) for v in text.split(",") if v.strip())
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"{e} in {text!r}") from None
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated values, got {text!r}"
            ) from None
        if not values:
            raise argparse.ArgumentTypeError("expected at least one value")
        return values

    return parse


def _option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``: VALUE as JSON (a number, true, a list, ...), else as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value, parse_constant=finite_float)
    except json.JSONDecodeError:
        return key, value


def add_model_data(p: Any, *, model: bool = True, cifar: bool = True, default_model="resnet20v1"):
    """The model (unless ``model`` is false) and, with ``cifar``, the CIFAR data."""
    g = p.add_argument_group("model and data" if cifar else "model")
    if model:
        g.add_argument(
            "--model",
            default=default_model if cifar else None,
            help=f"{', '.join(MODEL_NAMES)}, or resnet<DEPTH>v<1|2> for any CIFAR depth "
            f"(default: {default_model})",
        )
        g.add_argument(
            "--unit",
            choices=UNITS,
            help="residual unit of a resnet<DEPTH>v<1|2> model (default basic; depth 6n+2 for "
            "basic, 9n+2 for bottleneck)",
        )
    g.add_argument(
        "--model-option",
        action="append",
        type=_option,
        default=[],
        metavar="KEY=VALUE",
        help="architecture option of keras_preact (repeatable), e.g. width_multiplier=2, "
        "shortcut=exclusive_gating, placement=relu_before_add",
    )
    if not cifar:
        return
    g.add_argument(
        "--dataset",
        default="cifar10",
        help=f"{', '.join(DATASETS)} (default: cifar10); cifar10-sample is the embedded 1,000-image "
        "sample, which nothing falls back to when real data is missing",
    )
    add_cifar_source(
        g,
        "tfds (tensorflow-datasets, the default for cifar10 and cifar100) or folder:PATH (the "
        "official CIFAR python or binary archive, or its extracted folder); cifar10-sample takes "
        "none",
    )
    g.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        help="no 4-pixel pad + random crop + horizontal flip",
    )


def add_cifar_source(g: Any, source_help: str) -> None:
    """Where CIFAR comes from: ``--data-source`` (described by ``source_help``) and its options."""
    g.add_argument("--data-source", help=source_help)
    g.add_argument("--data-dir", help=TFDS_DIR_HELP)
    g.add_argument(
        "--no-verify-checksums",
        dest="verify_checksums",
        action="store_false",
        help="accept a folder: archive whose md5 differs from the official one (a re-packed or "
        "partial copy); its structure is still checked",
    )


def add_image_source(g: Any, data_help: str, *, required: bool = True, data_dir: bool = True):
    """Where images come from: ``--data`` (described by ``data_help``), ``--data-dir`` (unless
    ``data_dir`` is false: the CIFAR options give it), ``--manual-dir``, ``--skip-bad-images``."""
    g.add_argument("--data", required=required, metavar="DIR", help=data_help)
    if data_dir:
        g.add_argument("--data-dir", help=TFDS_DIR_HELP)
    g.add_argument(
        "--manual-dir",
        help="where ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar are (default: <data "
        "dir>/downloads/manual)",
    )
    g.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="leave out (and count) images that cannot be decoded instead of refusing them",
    )


def add_image_data(
    p: argparse.ArgumentParser, *, required: bool = True, shared: bool = True
) -> None:
    """The images of ``training.images``; without ``shared``, not ``--data-dir`` and ``--no-augment``
    (the CIFAR options give them)."""
    g = p.add_argument_group(
        "images",
        "DIR holds train/<class>/ and val/<class>/ (or --val-split) of JPEG, PNG, BMP, GIF or WebP\n"
        "images, checked before training (formats and checks: docs/images.md).",
    )
    add_image_source(
        g,
        "a folder of images, or tfds:imagenet2012 (prepared by tensorflow-datasets from ImageNet's "
        "archives in its manual folder)",
        required=required,
        data_dir=shared,
    )
    g.add_argument(
        "--val-split",
        type=finite_float,
        metavar="F",
        help="hold out this fraction of each class's training images for validation (when there "
        "is no val/ folder)",
    )
    g.add_argument(
        "--image-size",
        type=int,
        metavar="S",
        help="side of the square crop the network sees (default 224, or the input size of "
        "--weights); the papers' other lengths (256, 480, ...) scale with it",
    )
    g.add_argument(
        "--augmentation",
        default="scale",
        help=f"{', '.join(AUGMENTATIONS)}: scale (default): shorter side random in [256, 480], "
        "random crop, flip (He et al. 2015); inception: random area 8-100%% and aspect ratio "
        "3/4-4/3, flip (He et al. 2016 for ResNet-200); none: the centre crop",
    )
    g.add_argument(
        "--no-color-augment", dest="color_augment", action="store_false", help="no PCA colour noise"
    )
    if shared:
        g.add_argument(
            "--no-augment",
            dest="augment",
            action="store_false",
            help="train on the centre crop (no random crop, flip or colour)",
        )
    g.add_argument(
        "--weights",
        metavar="FILE.keras",
        help="fine-tune this network (e.g. one converted from a torchvision or timm checkpoint): "
        "its classifier is replaced by one for the folder's classes; --model is not needed. Or "
        f"{NAMED_WEIGHTS_HELP}",
    )
    g.add_argument("--preprocessing", metavar="NAME", help=f"with --weights: {PREPROCESSING_HELP}")


def add_recipe(
    p: argparse.ArgumentParser, *, tuned: tuple[str, ...] = (), family: str = "cifar"
) -> None:
    """The recipe and its overrides, except the fields in ``tuned`` (chosen by the tuner);
    ``family`` ``images`` describes the image recipes and adds the fine-tuning options."""
    images = family == "images"
    described = IMAGE_RECIPES if images else RECIPES
    notes = [
        f"{name}{' (default)' * (name == 'paper')}: {text}." for name, text in described.items()
    ]
    notes.append(
        "Learning rates scale linearly with the global batch (lr x batch/128) from their value at "
        "batch 128; lengths and decay points are kept in images seen, so the schedule in epochs "
        "does not depend on the batch size or on the number of replicas. Recipe options left unset "
        "take the value of --recipe."
    )
    g = p.add_argument_group("recipe", "\n".join(textwrap.fill(n, 96) for n in notes))
    g.add_argument("--recipe", default="paper", help=f"{', '.join(described)} (default: paper)")
    if "epochs" not in tuned:
        length = g.add_mutually_exclusive_group()
        length.add_argument("--epochs", type=int, help="training length in epochs")
        length.add_argument(
            "--iterations",
            type=int,
            help="length in iterations at batch 128, rounded to whole epochs",
        )
    overrides = {
        "--batch-size": dict(type=int, help="global batch, split over the replicas"),
        "--lr": dict(type=finite_float, help="peak learning rate at batch 128"),
        "--no-lr-scaling": dict(
            dest="scale_lr", action="store_false", default=None, help="use the lr as is, any batch"
        ),
        "--schedule": dict(help=f"learning-rate shape: {', '.join(SCHEDULES)}"),
        "--lr-decay-at": dict(
            type=comma_separated(finite_float),
            metavar="F,F",
            help="fractions of training where the step schedule divides the lr",
        ),
        "--lr-decay-factor": dict(type=finite_float, help="step schedule multiplier (paper: 0.1)"),
        "--momentum": dict(type=finite_float, help="SGD momentum"),
        "--nesterov": dict(action=argparse.BooleanOptionalAction, help="Nesterov momentum"),
        "--weight-decay": dict(type=finite_float, help="L2 weight decay of the kernels"),
        "--label-smoothing": dict(type=finite_float, help="label smoothing (paper: 0)"),
        "--warmup-epochs": dict(type=finite_float, help="linear warm-up from 0, in epochs"),
    }
    if images:
        overrides["--plateau-patience"] = dict(
            type=int,
            metavar="EPOCHS",
            help="--schedule plateau: divide the lr after this many epochs without a lower "
            "validation error (default 5)",
        )
        overrides["--freeze"] = dict(
            metavar="STAGE",
            help="with --weights: do not train the network up to and including this stage: "
            f"{', '.join(FREEZE_STAGES)} (default: none)",
        )
        overrides["--backbone-lr-scale"] = dict(
            type=finite_float,
            metavar="F",
            help="with --weights: the backbone's lr as a fraction of the new classifier's",
        )
    else:
        overrides["--warmup"] = dict(
            dest="gated_warmup",
            metavar="MODE",
            help="error-gated warm-up at --warmup-lr until the training error (mean of the last "
            f"20 batches of 128) is below --warmup-error: {', '.join(GATED_WARMUP_MODES)}; auto: "
            "ResNet-110 and ResNet-1001, as in the papers",
        )
        overrides["--warmup-lr"] = dict(
            dest="gated_warmup_lr", type=finite_float, metavar="LR", help="at batch 128"
        )
        overrides["--warmup-error"] = dict(
            dest="gated_warmup_error", type=finite_float, metavar="ERROR", help="a fraction"
        )
    for flag, settings in overrides.items():
        if flag[2:].replace("-", "_") not in tuned:
            g.add_argument(flag, **settings)


def add_distribution(p: argparse.ArgumentParser) -> None:
    """The strategy, the devices, XLA and mixed precision."""
    g = p.add_argument_group("distribution and compilation")
    g.add_argument(
        "--strategy",
        default="default",
        help=f"{', '.join(STRATEGIES)} (default: default). mirrored: every local GPU (or "
        "--devices, or --cpu-replicas); multi_worker: the cluster in TF_CONFIG (TensorFlow "
        "backend); with KERAS_BACKEND=jax, mirrored is keras.distribution.DataParallel",
    )
    g.add_argument(
        "--devices",
        type=comma_separated(str),
        default=(),
        metavar="LIST",
        help="devices for one_device/mirrored, e.g. 0,1 (GPU indices) or gpu:0,gpu:2",
    )
    g.add_argument(
        "--cpu-replicas", type=int, metavar="N", help="split the CPU into N devices for mirrored"
    )
    g.add_argument(
        "--sync-bn", action="store_true", help="batch norm over the global batch (JAX: always)"
    )
    g.add_argument(
        "--jit-compile",
        default="auto",
        help=f"XLA: {', '.join(JIT_MODES)} (default: auto, Keras' choice)",
    )
    g.add_argument(
        "--mixed-precision",
        default="float32",
        help=f"{', '.join(PRECISIONS)} (default: float32; float16 with loss scaling); outputs stay "
        "float32",
    )


def add_run(p: argparse.ArgumentParser) -> None:
    """The run folder, the seed, backups and progress lines."""
    g = p.add_argument_group("run")
    g.add_argument("--output", help="run directory (default: runs/<model>-<dataset>-<recipe>)")
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in --output (finished, or unfinished with other settings) once the "
        "new run has finished; until then the old one stays as it is",
    )
    g.add_argument(
        "--seed",
        type=int,
        help="seed of the data order, augmentation and initialisation (default: a random seed, "
        "recorded so that a resumed run continues with it)",
    )
    g.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="deterministic TensorFlow ops, for bit-exact reruns and resumes (default: on with "
        "--seed); Keras turns XLA off when they are on, so GPU runs may prefer --no-deterministic",
    )
    g.add_argument(
        "--backup-every",
        type=int,
        default=500,
        metavar="STEPS",
        help="also save the resume state every STEPS steps (0: only at epoch ends; default 500)",
    )
    g.add_argument("--eval-batch-size", type=int, help="test batch (default: the training batch)")
    g.add_argument(
        "--verbose",
        default="auto",
        help=f"{', '.join(VERBOSITY)} (default auto: progress bars on a terminal, else lines)",
    )


def given_fields(args: argparse.Namespace, cls: type, rename: dict[str, str] | None = None) -> dict:
    """The fields of dataclass ``cls`` that ``args`` holds (option dest = field name, or
    ``rename[field]``); the others keep their defaults."""
    rename = rename or {}
    return {
        f.name: getattr(args, rename.get(f.name, f.name))
        for f in dataclasses.fields(cls)
        if hasattr(args, rename.get(f.name, f.name))
    }


def train_config(args: argparse.Namespace, **replace: Any):
    """The ``TrainConfig`` for parsed options (options a parser lacks keep their defaults);
    ``replace`` sets fields directly."""
    # Here, not above: --help loads neither Keras (pipeline, strategy) nor the weights table.
    from keras_preact.weights import is_named
    from training.data.images.options import ImageOptions
    from training.recipes import Recipe
    from training.run.pipeline import TrainConfig
    from training.run.strategy import StrategyOptions

    given = vars(args)
    images = None if given.get("data") is None else ImageOptions(**given_fields(args, ImageOptions))
    model = given.get("model") or ("resnet50v1" if images else "resnet20v1")
    dataset = given.get("dataset", "cifar10")
    if images:
        dataset = images.tfds_name or Path(images.data).expanduser().name or "images"
        if images.weights is not None and not is_named(images.weights):
            if given.get("model"):
                raise UserError(
                    f"--weights {images.weights} holds the network to fine-tune: drop --model"
                )
            model = Path(images.weights).stem
    model_options = dict(given.get("model_option", []))
    if given.get("unit"):
        model_options["unit"] = given["unit"]
    fields = given_fields(args, TrainConfig)
    fields.update(
        model=model,
        model_options=model_options,
        dataset=dataset,
        recipe_overrides={
            f.name: given[f.name]
            for f in dataclasses.fields(Recipe)
            if f.name not in ("name", "description") and given.get(f.name) is not None
        },
        strategy=StrategyOptions(**given_fields(args, StrategyOptions, {"name": "strategy"})),
        output=given.get("output")
        or f"runs/{model.lower()}-{dataset}-{given.get('recipe', 'paper')}",
        images=images,
    )
    fields.update(replace)
    return TrainConfig(**fields)
