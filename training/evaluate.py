"""``python -m training.evaluate``: test a trained network with the papers' protocols.

This module only parses the command line and calls ``training.evaluation.protocols`` (the crops and the
scores) on the images of ``training.data.images.folder`` or tfds ``imagenet2012``; run it with ``--help``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from keras_preact.catalogue import DATASET_STATS
from training import command
from training import options as arguments
from training.choices import PROTOCOLS

EXAMPLES = """\
examples:
  # single centre crop (shorter side 256, 224 crop) on a folder's val/ (or the folder itself)
  python -m training.evaluate --model runs/flowers/best.keras --data ~/flowers

  # the v1 paper's 10-crop testing on ImageNet's validation set, per-class errors written as JSON
  python -m training.evaluate --model runs/r50/best.keras --data tfds:imagenet2012 \\
      --protocol 10crop --per-class --output runs/r50/10crop.json

  # fully-convolutional multi-scale testing (shorter side 224, 256, 384, 480, 640, and flips)
  python -m training.evaluate --model runs/r50/best.keras --data /data/imagenet --protocol multiscale

  # published weights by name (fetched once, then cached) on ImageNet's validation set
  python -m training.evaluate --model resnet50v1 --weights imagenet --data tfds:imagenet2012

Class folders are matched to the network's outputs by the names in --labels, else in the
labels.txt beside the model (training.images writes one), else by their sorted names. Sizes scale
with the network's input: at input S the shorter side is 256*S/224 and the scales s*S/224.
Prints top-1 and top-5 error; --output writes them (and the settings) as JSON.
"""


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (documented in ``--help``)."""
    p = arguments.Parser(
        prog="python -m training.evaluate",
        description="Top-1 and top-5 error of a trained .keras classifier on a folder of images "
        "or on ImageNet's validation set, with the testing protocols of He et al. 2015.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        required=True,
        help="the .keras file (raw [0, 255] RGB pixels in); with --weights, a model name",
    )
    p.add_argument(
        "--weights",
        metavar="NAME",
        help="published weights of the model --model names (imagenet, cifar10, cifar100 or e.g. "
        "torchvision:IMAGENET1K_V2; python -m keras_preact.weights lists them), fetched once",
    )
    p.add_argument(
        "--data",
        required=True,
        metavar="DIR",
        help="DIR/val/<class>/ when present, else DIR/<class>/; or tfds:imagenet2012 (validation)",
    )
    p.add_argument("--data-dir", help="tfds data directory (tfds:imagenet2012)")
    p.add_argument("--manual-dir", help="tfds manual folder with ImageNet's archives")
    p.add_argument(
        "--protocol",
        default="center",
        help=f"{', '.join(PROTOCOLS)} (default: center)",
    )
    p.add_argument("--labels", help="class names in the network's output order, one per line")
    p.add_argument(
        "--preprocessing",
        default="auto",
        metavar="NAME",
        help="how the network normalises raw [0, 255] pixels: auto (default: its own "
        "'preprocess' layer, required), none (it takes raw pixels), or the statistics it was "
        f"trained with, put in front of it: {', '.join(DATASET_STATS)}",
    )
    p.add_argument("--per-class", action="store_true", help="also the errors of every class")
    p.add_argument(
        "--batch-size", type=int, default=32, help="images per step (default 32; 10crop: x10)"
    )
    p.add_argument(
        "--skip-bad-images", action="store_true", help="leave out images that cannot be decoded"
    )
    p.add_argument("--output", metavar="FILE.json", help="write the result as JSON (new file)")
    return p


def _label_names(labels: str | None, model_path: Path | None) -> tuple[str, ...] | None:
    from keras_preact.command_line import UserError

    if not labels and model_path is None:
        return None
    path = Path(labels) if labels else model_path.with_name("labels.txt")
    if not path.is_file():
        if labels:
            raise UserError(f"--labels {labels}: file not found")
        return None
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read labels file {path}: {e}") from None
    names = [n for n in names if n]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        what = f"--labels {labels}" if labels else f"labels file {path}"
        raise UserError(f"{what} names {twice[0]!r} twice: each class once, in order")
    return tuple(names)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, evaluate, print the errors (and write them with ``--output``).

    ``--help`` and usage errors answer before Keras and TensorFlow load: only evaluating imports
    them.
    """
    return command.run(build_parser(), argv, _evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from keras_preact.command_line import UserError

    if args.protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {args.protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    model_path = Path(args.model).expanduser()
    output = Path(args.output).expanduser() if args.output else None
    if output is not None:
        from training.run import run_folder as rundir

        if output.exists():
            raise UserError(f"--output {output} exists: choose a new file")
        rundir.check_writable(output)
    from training.data.images.options import require_tensorflow

    require_tensorflow()
    from training.evaluation.protocols import evaluate

    result = evaluate(
        model_path,
        args.data,
        protocol=args.protocol,
        label_names=_label_names(args.labels, None if args.weights else model_path),
        preprocessing=args.preprocessing,
        per_class=args.per_class,
        batch=args.batch_size,
        skip_bad_images=args.skip_bad_images,
        data_dir=args.data_dir,
        manual_dir=args.manual_dir,
        output=output,
        weights=args.weights,
        log=print,
    )
    top5 = result["top5_error"]
    print(
        f"{args.protocol}: top-1 error {100 * result['top1_error']:.2f}%, top-5 error "
        f"{100 * top5:.2f}% on {result['images']:,} images ({result['classes']} classes, "
        f"{result['image_size']}x{result['image_size']})"
        + (f"; written to {output}" if output else ""),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
