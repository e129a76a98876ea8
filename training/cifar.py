"""``python -m training.cifar``: train a ResNet on CIFAR-10/100 with the papers' recipe.

This module only parses the command line into a ``training.pipeline.TrainConfig`` and calls
``training.pipeline.train``; run it with ``--help`` for every option.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from training.errors import UserError, cli_main

EXAMPLES = """\
examples:
  # the README's first command: ResNet-20 on the embedded CIFAR-10 sample, offline, ~2 min on a CPU
  python -m training.cifar --dataset cifar10-sample --model resnet20v1 --recipe demo --output runs/demo

  # the v2 paper's ResNet-164 on CIFAR-10 with the paper's recipe, on every local GPU
  python -m training.cifar --model resnet164v2 --strategy mirrored --output runs/r164

  # ResNet-110 on CIFAR-100 with 4 GPUs, batch 512 (lr scaled to 0.4), bfloat16 and XLA
  python -m training.cifar --model resnet110v1 --dataset cifar100 --strategy mirrored \\
      --batch-size 512 --mixed-precision bfloat16 --jit-compile on --output runs/r110-c100

  # the fast schedule on the JAX backend (keras.distribution data parallelism over all GPUs)
  KERAS_BACKEND=jax python -m training.cifar --model resnet164v2 --recipe fast --strategy mirrored

  # two replicas on a CPU-only machine; CIFAR from the official archives in a local folder
  python -m training.cifar --strategy mirrored --cpu-replicas 2 --data-source folder:~/cifar-10-python.tar.gz

  # one of two workers (run the same command on each, with its own task index)
  TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}, "task": {"type": "worker", "index": 0}}' \\
      python -m training.cifar --model resnet56v1 --strategy multi_worker --output /shared/runs/r56

outputs (in --output): config.json, backup/ (resume state, removed when the run finishes), best.keras
(highest test accuracy) and last.keras, history.csv, tensorboard/, curves.png (training/test error
against iterations, as in the papers' figures) and, once finished, metrics.json (final and best test
error, epochs, wall time, images/s, versions, full configuration).

Killing the process and re-running the same command resumes from the last backup (every
--backup-every steps and every epoch) and, with --seed, ends with exactly the same result. A finished
run is never overwritten without --overwrite, and --overwrite replaces it only once the new run has
finished.
"""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (``error: ...``, exit 2) like the others."""

    def error(self, message: str):  # type: ignore[override]
        raise UserError(f"{message} (see python -m training.cifar --help)")


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (every option documented; defaults come from the recipe)."""
    from training import pipeline, recipes, strategy

    p = _Parser(
        prog="python -m training.cifar",
        description="Train a ResNet of He et al. (2015, 2016) on CIFAR-10/100 and keep everything "
        "needed to compare it with the papers' tables. Recipe settings left unset take the value of "
        "--recipe.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("model and data")
    g.add_argument(
        "--model",
        default="resnet20v1",
        help="resnet20v1 32v1 44v1 56v1 110v1 1202v1, resnet110v2 164v2 1001v2, the ImageNet "
        "resnet18..200v1/v2, or resnet<DEPTH>v<1|2> for any CIFAR depth (default: resnet20v1)",
    )
    g.add_argument(
        "--unit",
        choices=("basic", "bottleneck"),
        help="residual unit of a resnet<DEPTH>v<1|2> model (default basic; depth 6n+2 for basic, "
        "9n+2 for bottleneck)",
    )
    g.add_argument(
        "--model-option",
        action="append",
        type=_option,
        default=[],
        metavar="KEY=VALUE",
        help="architecture option for keras_preact (repeatable), e.g. width_multiplier=2, "
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
        default="tfds",
        help="tfds (tensorflow-datasets, default) or folder:PATH (the official CIFAR python or "
        "binary archive, or its extracted folder)",
    )
    g.add_argument(
        "--data-dir", help="tfds data directory (default: TFDS_DATA_DIR or ~/tensorflow_datasets)"
    )
    g.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        help="no 4-pixel pad + random crop + horizontal flip",
    )

    g = p.add_argument_group(
        "recipe",
        "paper: SGD momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided by 10 at 32k and 48k "
        "iterations, stop at 64k (164 epochs on CIFAR), lr 0.01 until training error < 80%% for "
        "ResNet-110/1001. fast: batch 256, Nesterov, cosine after a 2-epoch warm-up, label "
        "smoothing 0.1, weight decay 5e-4, 75 epochs. demo: paper schedule in 30 epochs at batch 64. "
        "Learning rates are given at batch 128 and scaled linearly with the global batch (lr x "
        "batch/128); lengths and decay points are kept in images seen, so the schedule in epochs "
        "does not depend on the batch size or the number of replicas.",
    )
    g.add_argument(
        "--recipe", default="paper", help=f"{', '.join(recipes.RECIPES)} (default: paper)"
    )
    length = g.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="training length in epochs")
    length.add_argument(
        "--iterations",
        type=int,
        help="training length in iterations at batch 128 (paper: 64000), rounded to whole epochs",
    )
    g.add_argument("--batch-size", type=int, help="global batch, split over the replicas")
    g.add_argument("--lr", type=float, help="peak learning rate at batch 128 (paper: 0.1)")
    g.add_argument(
        "--no-lr-scaling",
        dest="scale_lr",
        action="store_false",
        default=None,
        help="use --lr as is, whatever the batch",
    )
    g.add_argument("--schedule", help=f"learning-rate shape: {', '.join(recipes.SCHEDULES)}")
    g.add_argument(
        "--lr-decay-at",
        type=_floats,
        metavar="F,F",
        help="fractions of training where the step schedule divides the lr (paper: 0.5,0.75)",
    )
    g.add_argument("--lr-decay-factor", type=float, help="step schedule multiplier (paper: 0.1)")
    g.add_argument("--momentum", type=float, help="SGD momentum (paper: 0.9)")
    g.add_argument(
        "--nesterov", action=argparse.BooleanOptionalAction, default=None, help="Nesterov momentum"
    )
    g.add_argument(
        "--weight-decay", type=float, help="L2 weight decay on the kernels (paper: 1e-4)"
    )
    g.add_argument("--label-smoothing", type=float, help="label smoothing (paper: 0)")
    g.add_argument(
        "--warmup",
        dest="gated_warmup",
        help="error-gated warm-up at --warmup-lr until the training error is below "
        "--warmup-error: auto (ResNet-110 and ResNet-1001, as in the papers), on, off",
    )
    g.add_argument("--warmup-lr", dest="gated_warmup_lr", type=float, help="(paper: 0.01)")
    g.add_argument("--warmup-error", dest="gated_warmup_error", type=float, help="(paper: 0.8)")
    g.add_argument("--warmup-epochs", type=float, help="linear warm-up from 0, in epochs (fast: 2)")

    g = p.add_argument_group("distribution and compilation")
    g.add_argument(
        "--strategy",
        default="default",
        help=f"{', '.join(strategy.STRATEGIES)} (default: default). mirrored: every local GPU (or "
        "--devices, or --cpu-replicas); multi_worker: the cluster in TF_CONFIG (TensorFlow "
        "backend); on KERAS_BACKEND=jax, mirrored is keras.distribution.DataParallel",
    )
    g.add_argument(
        "--devices",
        type=lambda s: tuple(d for d in s.split(",") if d.strip()),
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

    g = p.add_argument_group("run")
    g.add_argument("--output", help="run directory (default: runs/<model>-<dataset>-<recipe>)")
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a finished (or different unfinished) run in --output, once the new one has "
        "finished",
    )
    g.add_argument(
        "--seed",
        type=int,
        help="make the run reproducible (data order, augmentation, initialisation; TensorFlow ops "
        "deterministic); default: a random seed, recorded for resuming",
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
        help=f"{', '.join(pipeline.VERBOSITY)}: auto shows progress bars on a terminal and one line "
        "per epoch otherwise",
    )
    return p


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
"""Arguments that override fields of the recipe (``None`` = keep the recipe's value)."""


def config_from_args(args: argparse.Namespace):
    """The ``TrainConfig`` for parsed arguments."""
    from training.pipeline import TrainConfig
    from training.strategy import StrategyOptions

    options = dict(args.model_option)
    if args.unit:
        options["unit"] = args.unit
    overrides = {f: getattr(args, f) for f in RECIPE_FIELDS if getattr(args, f) is not None}
    output = args.output or f"runs/{args.model.lower()}-{args.dataset}-{args.recipe}"
    return TrainConfig(
        model=args.model,
        model_options=options,
        dataset=args.dataset,
        data_source=args.data_source,
        data_dir=args.data_dir,
        augment=args.augment,
        recipe=args.recipe,
        recipe_overrides=overrides,
        strategy=StrategyOptions(
            name=args.strategy,
            devices=args.devices,
            cpu_replicas=args.cpu_replicas,
            sync_bn=args.sync_bn,
            jit_compile=args.jit_compile,
            mixed_precision=args.mixed_precision,
        ),
        seed=args.seed,
        output=output,
        overwrite=args.overwrite,
        backup_every=args.backup_every,
        eval_batch_size=args.eval_batch_size,
        verbose=args.verbose,
    )


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, train, print where the results are."""
    from training.pipeline import train

    config = config_from_args(build_parser().parse_args(argv))
    metrics = train(config)
    if metrics:
        final, best = metrics.get("final_test_error"), metrics.get("best_test_error")
        print(
            f"done: {config.output}: final test error {100 * final:.2f}%, best {100 * best:.2f}% "
            f"(epoch {metrics.get('best_epoch')}), {metrics.get('wall_time_s', 0):.0f}s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
