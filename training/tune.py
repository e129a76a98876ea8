"""``python -m training.tune``: keras-tuner search over the training pipeline's hyper-parameters.

Each trial builds and compiles its model with ``training.run.pipeline.compile_model`` and trains it on
the data's training batches (``training.data.batches.TrainingData.train_batches``) with the recipe's
schedule (resolved for the trial's batch and length), under the same data and strategy options as
``python -m training.cifar`` (or, with ``--data``, ``python -m training.images``: a folder of
images, or a network to fine-tune with ``--weights``). Trials are scored on a validation split
held out from the training images (``--validation-split``, the papers' 45k/5k protocol), never on
the test set. The tuner directory is resumable: re-running the same command continues the
search; a different command on it is refused.
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

outputs (in --output): the keras-tuner project (trials, checkpoints, oracle state: re-run the same
command to resume), search.json (the search settings) and best_trials.json (the best trials'
hyper-parameters and validation accuracy, and the training command for the best one).
"""


def add_search_options(p: argparse.ArgumentParser) -> None:
    """The tuner, its budget and the search space."""
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
        type=options.finite_float,
        default=0.1,
        help="fraction of the training images held out to score trials (default 0.1: 45k/5k)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of the tuner and of the trials")
    for name, default in (("lr", SearchSpace.lr), ("weight-decay", SearchSpace.weight_decay)):
        g.add_argument(
            f"--{name}-range",
            type=options.comma_separated(options.finite_float),
            default=default,
            metavar="LOW,HIGH",
            help=f"{name.replace('-', ' ')} range, sampled log-uniformly "
            f"(default: {default[0]:g},{default[1]:g})",
        )
    g.add_argument(
        "--batch-sizes",
        type=options.comma_separated(int),
        default=SearchSpace.batch_sizes,
        metavar="B,B",
        help="global batch sizes to choose from (default: "
        f"{','.join(map(str, SearchSpace.batch_sizes))})",
    )
    g.add_argument(
        "--models",
        type=options.comma_separated(str),
        metavar="M,M",
        help="models to choose from, e.g. resnet20v1,resnet32v1 or resnet8v2,resnet14v2 "
        "(default: resnet20v1; not with --weights, whose network is the one trained)",
    )
    g.add_argument(
        "--units",
        type=options.comma_separated(str),
        default=SearchSpace.units,
        metavar="U,U",
        help=",".join(UNITS),
    )
    g.add_argument(
        "--widths",
        type=options.comma_separated(int),
        default=SearchSpace.widths,
        metavar="W,W",
        help="width multipliers",
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
    space = SearchSpace(
        lr=args.lr_range,
        weight_decay=args.weight_decay_range,
        batch_sizes=args.batch_sizes,
        models=tuple(m.lower() for m in args.models or SearchSpace.models),
        units=args.units,
        widths=args.widths,
    )
    # A new network: the first model to choose from; a fine-tuned one: the network --weights holds.
    model = {} if args.weights else {"model": space.models[0]}
    base = options.train_config(args, output=args.output, seed=args.seed, verbose="quiet", **model)
    best = search(
        base,
        space,
        tuner=args.tuner,
        output=args.output,
        max_trials=args.max_trials,
        epochs=args.epochs,
        max_epochs=args.max_epochs,
        validation_split=args.validation_split,
        seed=args.seed,
    )
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
