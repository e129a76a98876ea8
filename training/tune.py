"""``python -m training.tune``: keras-tuner search over the training pipeline's hyper-parameters.

Each trial trains with ``training.run.pipeline`` under the options of ``python -m training.cifar``
(or, with ``--data``, of ``python -m training.images``) and is scored on a validation split held out
from the training images (``--validation-split``), never on the test set.
"""

from __future__ import annotations

import argparse
from functools import partial

# Nothing Keras or TensorFlow at module level: --help and usage errors answer at once.
from keras_preact.catalogue import UNITS
from keras_preact.command_line import UserError
from training import options
from training.choices import TUNERS
from training.command_line import Command
from training.experiments.search_space import SearchSpace

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

outputs (search.json, best_trials.json) and resuming a search: docs/training.md
"""


def add_search_options(p: argparse.ArgumentParser) -> None:
    """The tuner, its budget and the search space."""
    g = p.add_argument_group("search")
    g.add_argument("--tuner", default="random", help=f"{', '.join(TUNERS)} (default: random)")
    g.add_argument("--output", default="runs/tune", help="tuner directory (default: runs/tune)")
    g.add_argument("--max-trials", type=int, default=10, help="trial budget (random, bayesian)")
    g.add_argument("--epochs", type=int, default=10, help="epochs per trial (random, bayesian)")
    g.add_argument("--max-epochs", type=int, default=27, help="longest trial (hyperband)")
    g.add_argument(
        "--validation-split",
        type=options.finite_float,
        default=0.1,
        help="fraction of the training images held out to score trials (default 0.1: 45k/5k)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of the tuner and of the trials")
    g.add_argument(
        "--models",
        type=options.comma_separated(str),
        metavar="M,M",
        help="models to choose from, e.g. resnet20v1,resnet32v1 or resnet8v2,resnet14v2 "
        "(default: resnet20v1; not with --weights, whose network is the one trained)",
    )
    number = options.finite_float
    for flag, name, kind, what in (
        ("--lr-range", "lr", number, "learning rates, sampled log-uniformly"),
        ("--weight-decay-range", "weight_decay", number, "weight decays, sampled log-uniformly"),
        ("--batch-sizes", "batch_sizes", int, "global batch sizes to choose from"),
        ("--units", "units", str, f"residual units to choose from: {', '.join(UNITS)}"),
        ("--widths", "widths", int, "width multipliers to choose from"),
    ):
        default = getattr(SearchSpace, name)
        shown = ",".join(map(str, default)) or "the model's"
        g.add_argument(
            flag,
            type=options.comma_separated(kind),
            default=default,
            metavar="LOW,HIGH" if flag.endswith("range") else "A,B",
            help=f"{what} (default: {shown})",
        )


def tune(args: argparse.Namespace) -> int:
    """The stage: check the search space, run (or resume) the search, print the best trial's
    command."""
    # Here, not at the top: --help and usage errors answer before Keras and TensorFlow load.
    from training.experiments.search import search

    for pair in (args.lr_range, args.weight_decay_range):
        if len(pair) != 2:
            raise UserError(f"a range is LOW,HIGH, got {','.join(map(str, pair))}")
    if args.weights and args.models:
        raise UserError("--models chooses new networks: --weights fine-tunes the one it holds")
    ranges = {"lr": "lr_range", "weight_decay": "weight_decay_range"}
    models = tuple(m.lower() for m in args.models or SearchSpace.models)
    space = SearchSpace(**options.given_fields(args, SearchSpace, ranges) | {"models": models})
    # A new network: the first model to choose from; a fine-tuned one: the network --weights holds.
    model = {} if args.weights else {"model": space.models[0]}
    base = options.train_config(args, output=args.output, seed=args.seed, verbose="quiet", **model)
    settings = ("tuner", "output", "max_trials", "epochs", "max_epochs", "validation_split", "seed")
    best = search(base, space, **{name: getattr(args, name) for name in settings})
    if best:
        print(f"best: validation accuracy {best[0]['val_accuracy']:.4f}: {best[0]['command']}")
    return 0


COMMAND = Command(
    "tune",
    description="Search the learning rate, weight decay, batch size and model depth/unit/width "
    "with keras-tuner over the training pipeline; trials are scored on a validation split held "
    "out from the training images.",
    examples=EXAMPLES,
    groups=(
        add_search_options,
        partial(options.add_model_data, model=False),
        partial(options.add_image_data, required=False, shared=False),
        partial(options.add_recipe, tuned=("epochs", "batch_size", "lr", "weight_decay")),
        options.add_distribution,
    ),
    stage=tune,
)
build_parser, main = COMMAND.build_parser, COMMAND.main

if __name__ == "__main__":
    COMMAND.exit()
