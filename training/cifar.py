"""``python -m training.cifar``: train a ResNet on CIFAR-10/100 with the papers' recipe.

This module only parses the command line into a ``training.run.pipeline.TrainConfig`` and calls
``training.run.pipeline.train``; run it with ``--help`` for every option.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from training import command
from training import options as arguments

EXAMPLES = """\
examples:
  # what make demo runs: ResNet-20 on the embedded CIFAR-10 sample, offline, ~2-3 min on 2 CPU cores
  python -m training.cifar --dataset cifar10-sample --model resnet20v1 --recipe demo --output runs/demo/train

  # the v2 paper's ResNet-164 on CIFAR-10 with the paper's recipe, on every local GPU
  python -m training.cifar --model resnet164v2 --strategy mirrored --output runs/r164

  # ResNet-110 on CIFAR-100 on every local GPU, batch 512 (lr scaled to 0.4), bfloat16 and XLA
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
(highest test accuracy) and last.keras, labels.txt (class names in label order, for python -m export
--labels), history.csv, tensorboard/, curves.png (training/test error
against iterations, as in the papers' figures) and, once finished, metrics.json (final and best test
error, epochs, wall time, images/s, versions, full configuration).

Killing the process and re-running the same command resumes from the last backup (every
--backup-every steps and every epoch) and, with --seed, ends with exactly the same result. A finished
run is never overwritten without --overwrite, and --overwrite replaces it only once the new run has
finished.
"""


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (every option documented; recipe options default to the recipe)."""
    p = arguments.Parser(
        prog="python -m training.cifar",
        description="Train a ResNet of He et al. (2015, 2016) on CIFAR-10/100 and keep everything "
        "needed to compare it with the papers' tables. Recipe options left unset take the value of "
        "--recipe.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    arguments.add_model_data(p)
    arguments.add_recipe(p)
    arguments.add_distribution(p)
    arguments.add_run(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, train, print where the results are.

    ``--help`` and usage errors answer before Keras and TensorFlow load (seconds): only training
    imports them.
    """
    return command.run(build_parser(), argv, command.train)


if __name__ == "__main__":
    sys.exit(main())
