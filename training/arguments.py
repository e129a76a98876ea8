"""Command-line options shared by ``python -m training.cifar`` and ``python -m training.tune``.

Each ``add_*`` function adds one group of options; ``train_config`` turns parsed options into a
``training.pipeline.TrainConfig``. Options that change a recipe default to ``None`` ("keep the
recipe's value").
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from typing import Any

# Nothing here imports Keras, keras_preact or the pipeline at module level: --help and usage errors
# answer before TensorFlow loads. The choices --help lists are written out for the same reason;
# tests/training/test_train.py checks them against the modules that define them.
RECIPES = ("paper", "fast", "demo")
"""``training.recipes.RECIPES``."""
SCHEDULES = ("step", "cosine")
"""``training.recipes.SCHEDULES``."""
STRATEGIES = ("default", "one_device", "mirrored", "multi_worker")
"""``training.strategy.STRATEGIES``."""
VERBOSITY = ("auto", "bar", "line", "quiet")
"""``training.pipeline.VERBOSITY``."""

RECIPE_HELP = (
    "paper (default): SGD momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided by 10 at 32k "
    "and 48k iterations, stop at 64k (164 epochs on CIFAR), lr 0.01 until the training error is "
    "below 80% for ResNet-110/1001. fast: batch 256, Nesterov, cosine after a 2-epoch warm-up, "
    "label smoothing 0.1, weight decay 5e-4, 75 epochs. demo: the paper's schedule in 30 epochs at "
    "batch 64. Learning rates are given at batch 128 and scaled linearly with the global batch "
    "(lr x batch/128); lengths and decay points are kept in images seen, so the schedule in epochs "
    "does not depend on the batch size or on the number of replicas."
)

RECIPE_FIELDS = (
    "epochs",
    "iterations",
    "batch_size",
    "lr",
    "scale_lr",
    "schedule",
    "lr_decay_at",
    "lr_decay_factor",
    "momentum",
    "nesterov",
    "weight_decay",
    "label_smoothing",
    "gated_warmup",
    "gated_warmup_lr",
    "gated_warmup_error",
    "warmup_epochs",
)
"""Options that override fields of ``recipes.Recipe`` (same names)."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (``error: ...``, exit 2) like the others.

    It prints the line itself instead of raising ``keras_preact.cli.UserError``, whose import
    loads Keras: a usage error answers at once."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {' '.join(message.split())} (see {self.prog} --help)\n")


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
            values = tuple(kind(v) for v in text.split(",") if v.strip())
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


def _not_finite(name: str) -> Any:
    raise argparse.ArgumentTypeError(f"expected a finite number, got {name}")


def _option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``: VALUE as JSON (a number, true, a list, ...), else as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value, parse_constant=_not_finite)
    except json.JSONDecodeError:
        return key, value


def add_model_data(p: argparse.ArgumentParser, *, model: bool = True) -> None:
    """``--model``, ``--unit``, ``--model-option``, ``--dataset``, ``--data-source``, ``--data-dir``,
    ``--no-augment``."""
    g = p.add_argument_group("model and data")
    if model:
        g.add_argument(
            "--model",
            default="resnet20v1",
            help="resnet20v1 32v1 44v1 56v1 110v1 1202v1, resnet110v2 164v2 1001v2, the ImageNet "
            "resnet18..200v1/v2, or resnet<DEPTH>v<1|2> for any CIFAR depth (default: resnet20v1)",
        )
        g.add_argument(
            "--unit",
            choices=("basic", "bottleneck"),
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
    g.add_argument(
        "--dataset",
        default="cifar10",
        help="cifar10, cifar100 or cifar10-sample (the embedded 1,000-image sample; nothing falls "
        "back to it when real data is missing) (default: cifar10)",
    )
    g.add_argument(
        "--data-source",
        help="tfds (tensorflow-datasets, the default for cifar10 and cifar100) or folder:PATH (the "
        "official CIFAR python or binary archive, or its extracted folder); cifar10-sample takes "
        "none",
    )
    g.add_argument(
        "--data-dir", help="tfds data directory (default: TFDS_DATA_DIR or ~/tensorflow_datasets)"
    )
    g.add_argument(
        "--no-verify-checksums",
        dest="verify_checksums",
        action="store_false",
        help="accept a folder: archive whose md5 differs from the official one (a re-packed or "
        "partial copy); its structure is still checked",
    )
    g.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        help="no 4-pixel pad + random crop + horizontal flip",
    )


def add_recipe(p: argparse.ArgumentParser, *, tuned: tuple[str, ...] = ()) -> None:
    """The recipe and its overrides, except the fields in ``tuned`` (chosen by the tuner)."""
    g = p.add_argument_group("recipe", RECIPE_HELP)
    g.add_argument("--recipe", default="paper", help=f"{', '.join(RECIPES)} (default: paper)")
    if "epochs" not in tuned:
        length = g.add_mutually_exclusive_group()
        length.add_argument("--epochs", type=int, help="training length in epochs")
        length.add_argument(
            "--iterations",
            type=int,
            help="training length in iterations at batch 128 (paper: 64000), rounded to whole epochs",
        )
    if "batch_size" not in tuned:
        g.add_argument("--batch-size", type=int, help="global batch, split over the replicas")
    if "lr" not in tuned:
        g.add_argument(
            "--lr", type=finite_float, help="peak learning rate at batch 128 (paper: 0.1)"
        )
    g.add_argument(
        "--no-lr-scaling",
        dest="scale_lr",
        action="store_false",
        default=None,
        help="use the learning rate as is, whatever the batch",
    )
    g.add_argument("--schedule", help=f"learning-rate shape: {', '.join(SCHEDULES)}")
    g.add_argument(
        "--lr-decay-at",
        type=comma_separated(finite_float),
        metavar="F,F",
        help="fractions of training where the step schedule divides the lr (paper: 0.5,0.75)",
    )
    g.add_argument(
        "--lr-decay-factor", type=finite_float, help="step schedule multiplier (paper: 0.1)"
    )
    g.add_argument("--momentum", type=finite_float, help="SGD momentum (paper: 0.9)")
    g.add_argument(
        "--nesterov", action=argparse.BooleanOptionalAction, default=None, help="Nesterov momentum"
    )
    if "weight_decay" not in tuned:
        g.add_argument(
            "--weight-decay", type=finite_float, help="L2 weight decay on the kernels (paper: 1e-4)"
        )
    g.add_argument("--label-smoothing", type=finite_float, help="label smoothing (paper: 0)")
    g.add_argument(
        "--warmup",
        dest="gated_warmup",
        metavar="MODE",
        help="error-gated warm-up at --warmup-lr until the training error (mean of the last 20 "
        "batches of 128) is below --warmup-error: auto (ResNet-110 and ResNet-1001, as in the "
        "papers), on, off",
    )
    g.add_argument(
        "--warmup-lr",
        dest="gated_warmup_lr",
        type=finite_float,
        metavar="LR",
        help="at batch 128 (paper: 0.01)",
    )
    g.add_argument(
        "--warmup-error",
        dest="gated_warmup_error",
        type=finite_float,
        metavar="ERROR",
        help="fraction (paper: 0.8)",
    )
    g.add_argument(
        "--warmup-epochs", type=finite_float, help="linear warm-up from 0, in epochs (fast: 2)"
    )


def add_distribution(p: argparse.ArgumentParser) -> None:
    """``--strategy``, ``--devices``, ``--cpu-replicas``, ``--sync-bn``, ``--jit-compile``,
    ``--mixed-precision``."""
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
        type=lambda s: tuple(d.strip() for d in s.split(",") if d.strip()),
        default=(),
        metavar="LIST",
        help="devices for one_device/mirrored, e.g. 0,1 (GPU indices) or gpu:0,gpu:2",
    )
    g.add_argument(
        "--cpu-replicas",
        type=int,
        metavar="N",
        help="split the CPU into N logical devices so that mirrored runs N replicas without GPUs",
    )
    g.add_argument(
        "--sync-bn",
        action="store_true",
        help="batch normalisation statistics over the global batch (TensorFlow; on JAX they "
        "always are)",
    )
    g.add_argument(
        "--jit-compile", default="auto", help="XLA: auto (Keras' choice), on, off (default: auto)"
    )
    g.add_argument(
        "--mixed-precision",
        default="float32",
        help="float32 (default), bfloat16, or float16 (with loss scaling); outputs stay float32",
    )


def add_run(p: argparse.ArgumentParser) -> None:
    """``--output``, ``--overwrite``, ``--seed``, ``--backup-every``, ``--eval-batch-size``,
    ``--verbose``."""
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
        help=f"{', '.join(VERBOSITY)}: auto shows progress bars on a terminal and one line "
        "per epoch otherwise",
    )


def train_config(args: argparse.Namespace, **replace: Any):
    """The ``TrainConfig`` for parsed options (options a parser lacks keep their defaults);
    ``replace`` sets fields directly."""
    from training.pipeline import TrainConfig
    from training.strategy import StrategyOptions

    def get(name: str, default: Any = None) -> Any:
        return getattr(args, name, default)

    model = get("model", "resnet20v1")
    options = dict(get("model_option", []))
    if get("unit"):
        options["unit"] = get("unit")
    overrides = {f: get(f) for f in RECIPE_FIELDS if get(f) is not None}
    fields: dict[str, Any] = dict(
        model=model,
        model_options=options,
        dataset=get("dataset", "cifar10"),
        data_source=get("data_source"),
        data_dir=get("data_dir"),
        verify_checksums=get("verify_checksums", True),
        augment=get("augment", True),
        recipe=get("recipe", "paper"),
        recipe_overrides=overrides,
        strategy=StrategyOptions(
            name=get("strategy", "default"),
            devices=get("devices", ()),
            cpu_replicas=get("cpu_replicas"),
            sync_bn=get("sync_bn", False),
            jit_compile=get("jit_compile", "auto"),
            mixed_precision=get("mixed_precision", "float32"),
        ),
        seed=get("seed"),
        deterministic=get("deterministic"),
        output=get("output")
        or f"runs/{model.lower()}-{get('dataset', 'cifar10')}-{get('recipe', 'paper')}",
        overwrite=get("overwrite", False),
        backup_every=get("backup_every", 500),
        eval_batch_size=get("eval_batch_size"),
        verbose=get("verbose", "auto"),
    )
    fields.update(replace)
    return TrainConfig(**fields)
