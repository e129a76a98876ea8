"""``python -m keras_preact.weights [--model NAME]``: the published weights keras-preact fetches by name.

One line per file: the model, the ``weights=`` names that pick it (the dataset and the qualified
name), the arguments it needs, the preprocessing it was trained with, the accuracy as its source
publishes it (not re-measured here), the URL and the licence note.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import keras_preact.weights as weights_lib
from keras_preact.command_line import ArgumentParser, UserError, cli_main


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (documented in ``--help``)."""
    p = ArgumentParser(
        prog="python -m keras_preact.weights",
        description="List the published weights that weights='imagenet', 'cifar10', 'cifar100' "
        "or a qualified name such as 'torchvision:IMAGENET1K_V1' fetch, one line each.",
    )
    p.add_argument("--model", help="only those of this model, e.g. resnet50v1")
    return p


def describe(entry) -> str:
    """One line for an entry of the table."""
    need = ", ".join(f"{k}={v!r}" for k, v in entry.options.items())
    first = next(
        e
        for e in weights_lib.ENTRIES
        if (e.model, e.dataset, dict(e.options))
        == (entry.model, entry.dataset, dict(entry.options))
    )
    name = entry.dataset if first is entry else entry.qualified
    call = f"{weights_lib.TITLES[entry.model]}(weights={name!r}{', ' + need if need else ''})"
    return (
        f"{entry.model}  {entry.qualified:<28} {call:<70} {entry.published}; preprocessing "
        f"{entry.preprocessing}; {entry.url}; {entry.licence}"
    )


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    """Print the table (or a model's rows)."""
    args = build_parser().parse_args(argv)
    try:
        entries = weights_lib.list_weights(args.model)
    except ValueError as e:
        raise UserError(str(e)) from None
    if not entries:
        raise UserError(
            f"no published weights hold {args.model}; see python -m keras_preact.weights"
        )
    for entry in entries:
        print(describe(entry))
    return 0


if __name__ == "__main__":
    sys.exit(main())
