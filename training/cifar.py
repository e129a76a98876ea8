"""``python -m training.cifar``: train a ResNet on CIFAR-10/100 with the papers' recipe (a
``training.command_line.Command``: its options become the ``TrainConfig`` the pipeline trains)."""

from __future__ import annotations

from training import options
from training.command_line import Command, train

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

outputs (config.json, best.keras, last.keras, labels.txt, history.csv, curves.png, metrics.json),
resuming a killed run and --overwrite: docs/training.md
"""

COMMAND = Command(
    "cifar",
    description="Train a ResNet of He et al. (2015, 2016) on CIFAR-10/100 and keep everything "
    "needed to compare it with the papers' tables.",
    examples=EXAMPLES,
    groups=(options.add_model_data, options.add_recipe, options.add_distribution, options.add_run),
    stage=train,
)
build_parser, main = COMMAND.build_parser, COMMAND.main

if __name__ == "__main__":
    COMMAND.exit()
