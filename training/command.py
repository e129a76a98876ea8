"""What the training commands do once their options are parsed.

``run`` calls a command's body under ``keras_preact.command_line.cli_main`` (bad input: one ``error:``
line, exit 2; TensorFlow's log lines hidden unless ``--native-logs``). ``train`` is the body of
``python -m training.cifar`` and ``python -m training.images``: train the parsed configuration and
print where the results are.

Nothing here imports Keras, TensorFlow or the pipeline at module level: ``--help`` and usage errors
answer before they load.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from training import options as arguments


def run(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    body: Callable[[argparse.Namespace], int],
) -> int:
    """Parse ``argv`` with ``parser`` (a ``training.options.Parser``), then return ``body(args)``
    under ``cli_main``; with ``--native-logs``, TensorFlow's log lines are shown."""
    args = parser.parse_args(argv)
    from keras_preact.command_line import cli_main
    from keras_preact.native_logs import show_native_logs

    @cli_main
    def command(args: argparse.Namespace) -> int:
        if args.native_logs:
            show_native_logs()
        return body(args)

    return command(args)


def train(args: argparse.Namespace) -> int:
    """Train the ``TrainConfig`` of parsed options; print the final and best error on the held-out
    images (CIFAR's test set, a folder's or ImageNet's validation set)."""
    from training.run.pipeline import train as train_run

    config = arguments.train_config(args)
    metrics = train_run(config)
    final, best = metrics.get("final_test_error"), metrics.get("best_test_error")
    if final is not None and best is not None:
        held_out = "test" if config.images is None else "validation"
        print(
            f"done: {config.output}: final {held_out} error {100 * final:.2f}%, best "
            f"{100 * best:.2f}% (epoch {metrics.get('best_epoch')}), "
            f"{metrics.get('wall_time_s', 0):.0f}s",
            flush=True,
        )
    return 0
