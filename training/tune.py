"""``python -m training.tune``: keras-tuner search over the training pipeline's hyper-parameters.

The same data and strategy options as ``python -m training.cifar`` (or, with ``--data``, ``python -m
training.images``: a folder of images, or a network to fine-tune with ``--weights``); trials are
scored on a validation split held out from the training images (``--validation-split``, the papers'
45k/5k protocol). The search itself is ``training.experiments.search``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

# Nothing Keras or TensorFlow at module level: --help and usage errors answer at once.
from training.choices import TUNERS

EXAMPLES = """\
examples:
  # 20 random trials of 10 epochs over lr, weight decay and batch size for ResNet-20 on CIFAR-10
  python -m training.tune --models resnet20v1 --max-trials 20 --epochs 10 --output runs/tune-r20

  # 8 trials of 5 epochs fine-tuning a ResNet-50 on a folder of images (validation: 10 % of train)
  python -m training.tune --data ~/flowers --weights resnet50.keras --recipe finetune \\
      --max-trials 8 --epochs 5 --lr-range 0.005,0.1 --batch-sizes 32,64 --output runs/tune-flowers

  # Hyperband over depth and width on the embedded sample, two CPU replicas
  python -m training.tune --dataset cifar10-sample --tuner hyperband --max-epochs 9 \\
      --models resnet8v1,resnet14v1,resnet20v1 --widths 1,2 --strategy mirrored --cpu-replicas 2

outputs (in --output): the keras-tuner project (trials, checkpoints, oracle state: re-run the same
command to resume), search.json (the search settings) and best_trials.json (the best trials'
hyper-parameters and validation accuracy, and the training command for the best one).
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m training.tune`` parser: the search options plus the data, recipe and
    distribution options of ``python -m training.cifar`` (same names, same meaning)."""
    from training import options as arguments

    p = arguments.Parser(
        prog="python -m training.tune",
        description="Search the learning rate, weight decay, batch size and model depth/unit/width "
        "with keras-tuner over the training pipeline; trials are scored on a validation split held "
        "out from the training images.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("search")
    g.add_argument("--tuner", default="random", help=f"{', '.join(TUNERS)} (default: random)")
    g.add_argument("--output", default="runs/tune", help="tuner directory (default: runs/tune)")
    g.add_argument("--max-trials", type=int, default=10, help="trial budget (random, bayesian)")
    g.add_argument("--epochs", type=int, default=10, help="epochs per trial (random, bayesian)")
    g.add_argument(
        "--max-epochs", type=int, default=27, help="Hyperband's longest trial, in epochs"
    )
    g.add_argument(
        "--validation-split",
        type=arguments.finite_float,
        default=0.1,
        help="fraction of the training images held out to score trials (default 0.1: 45k/5k)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of the tuner and of the trials")
    g.add_argument(
        "--lr-range",
        type=arguments.comma_separated(arguments.finite_float),
        default=(0.02, 0.4),
        metavar="LOW,HIGH",
    )
    g.add_argument(
        "--weight-decay-range",
        type=arguments.comma_separated(arguments.finite_float),
        default=(1e-5, 1e-3),
        metavar="LOW,HIGH",
    )
    g.add_argument(
        "--batch-sizes", type=arguments.comma_separated(int), default=(64, 128, 256), metavar="B,B"
    )
    g.add_argument(
        "--models",
        type=arguments.comma_separated(str),
        metavar="M,M",
        help="models to choose from, e.g. resnet20v1,resnet32v1 or resnet8v2,resnet14v2 "
        "(default: resnet20v1; not with --weights, whose network is the one trained)",
    )
    g.add_argument(
        "--units",
        type=arguments.comma_separated(str),
        default=(),
        metavar="U,U",
        help="basic,bottleneck",
    )
    g.add_argument(
        "--widths",
        type=arguments.comma_separated(int),
        default=(1,),
        metavar="W,W",
        help="width multipliers",
    )
    arguments.add_model_data(p, model=False)
    arguments.add_image_data(p, required=False, shared=False)
    arguments.add_recipe(p, tuned=("epochs", "batch_size", "lr", "weight_decay"))
    arguments.add_distribution(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the search (``--help`` and usage errors answer before Keras and
    TensorFlow load)."""
    from training import command

    return command.run(build_parser(), argv, _search)


def _search(args: argparse.Namespace) -> int:
    # Here, not at the top: --help and usage errors answer before Keras and TensorFlow load.
    from keras_preact.command_line import UserError
    from training import options as arguments
    from training.experiments.search import SearchSpace, search

    for pair in (args.lr_range, args.weight_decay_range):
        if len(pair) != 2:
            raise UserError(f"a range is LOW,HIGH, got {','.join(map(str, pair))}")
    if args.weights and args.models:
        raise UserError("--models chooses new networks: --weights fine-tunes the one it holds")
    space = SearchSpace(
        lr=args.lr_range,
        weight_decay=args.weight_decay_range,
        batch_sizes=args.batch_sizes,
        models=tuple(m.lower() for m in args.models or ("resnet20v1",)),
        units=args.units,
        widths=args.widths,
    )
    # A new network: the first model to choose from; a fine-tuned one: the network --weights holds.
    model = {} if args.weights else {"model": space.models[0]}
    base = arguments.train_config(
        args, output=args.output, seed=args.seed, verbose="quiet", **model
    )
    run = ("tuner", "output", "max_trials", "epochs", "max_epochs", "validation_split", "seed")
    best = search(base, space, **{name: getattr(args, name) for name in run})
    if best:
        print(f"best: validation accuracy {best[0]['val_accuracy']:.4f}: {best[0]['command']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
