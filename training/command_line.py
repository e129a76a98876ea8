"""The harness of every training command: its parser, its ``main`` and the stage it calls.

A command module (``training.cifar``, ``images``, ``evaluate``, ``tune``, ``reproduce``) declares one
``Command``. ``Command.main`` parses, then calls the stage under ``keras_preact.command_line.cli_main``
(bad input: one ``error:`` line, exit 2; TensorFlow's log lines hidden unless ``--native-logs``).
Only the standard library and plain data load here: ``--help`` and usage errors answer before Keras.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from keras_preact.command_line import cli_main
from keras_preact.native_logs import add_native_logs_option, show_native_logs
from training import options


class Parser(argparse.ArgumentParser):
    """A usage error is one line (``error: ... (see PROG --help)``, exit 2), before anything loads."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {' '.join(message.split())} (see {self.prog} --help)\n")


@dataclass(frozen=True)
class Command:
    """A training command as data: ``python -m training.<name>``, what ``--help`` says, the option
    groups (functions that add options to the parser) and the stage run on the parsed options."""

    name: str
    description: str
    examples: str
    groups: Sequence[Callable[[argparse.ArgumentParser], None]]
    stage: Callable[[argparse.Namespace], int]

    def build_parser(self) -> Parser:
        """The parser: ``--native-logs`` and the options of ``groups``."""
        parser = Parser(
            prog=f"python -m training.{self.name}",
            description=textwrap.fill(self.description, 100),
            epilog=self.examples,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_native_logs_option(parser)
        for add in self.groups:
            add(parser)
        return parser

    def main(self, argv: Sequence[str] | None = None) -> int:
        """Parse ``argv`` (``--help`` and usage errors exit here), then run the stage (``cli_main``)."""
        args = self.build_parser().parse_args(argv)

        @cli_main
        def run() -> int:
            if args.native_logs:
                show_native_logs()
            return self.stage(args)

        return run()

    def exit(self) -> None:
        """``python -m``: exit with the status of ``main``."""
        sys.exit(self.main())


def train(args: argparse.Namespace) -> int:
    """The stage of ``training.cifar`` and ``training.images``: train the parsed ``TrainConfig``,
    print the final and best error on the held-out images."""
    from training.run.pipeline import train as train_run  # here: --help loads no Keras

    config = options.train_config(args)
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
