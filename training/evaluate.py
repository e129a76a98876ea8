"""``python -m training.evaluate``: test a trained network with the papers' protocols (a
``training.command_line.Command`` whose stage calls ``training.evaluation.protocols.evaluate``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from keras_preact.command_line import UserError
from training import options
from training.choices import PROTOCOLS
from training.command_line import Command
from training.run import run_folder

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

matching class folders to outputs (--labels, labels.txt), crop sizes and the JSON: docs/images.md
"""


PASSED_ON = ("protocol", "preprocessing", "per_class", "skip_bad_images", "data_dir", "manual_dir")
"""The options that go to ``training.evaluation.protocols.evaluate`` as they are."""


def add_options(p: argparse.ArgumentParser) -> None:
    """The network, the images, the protocol and the report."""
    p.add_argument(
        "--model",
        required=True,
        help="the .keras file (raw [0, 255] RGB pixels in); with --weights, a model name",
    )
    p.add_argument("--weights", metavar="NAME", help=options.NAMED_WEIGHTS_HELP)
    options.add_image_source(
        p, "DIR/val/<class>/ when present, else DIR/<class>/; or tfds:imagenet2012 (validation)"
    )
    p.add_argument("--protocol", default="center", help=f"{', '.join(PROTOCOLS)} (default: center)")
    p.add_argument("--labels", help="class names in the network's output order, one per line")
    p.add_argument(
        "--preprocessing", default="auto", metavar="NAME", help=options.PREPROCESSING_HELP
    )
    p.add_argument("--per-class", action="store_true", help="also the errors of every class")
    p.add_argument(
        "--batch-size", type=int, default=32, help="images per step (default 32; 10crop: x10)"
    )
    p.add_argument("--output", metavar="FILE.json", help="write the result as JSON (new file)")


def _label_names(labels: str | None, model_path: Path | None) -> tuple[str, ...] | None:
    """The class names of --labels, else of the labels.txt beside the model (None: none)."""
    path = Path(labels) if labels else model_path and model_path.with_name(run_folder.LABELS)
    if labels and not path.is_file():
        raise UserError(f"--labels {labels}: file not found")
    if path is None or not path.is_file():
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


def evaluate(args: argparse.Namespace) -> int:
    """The stage: check the options, evaluate, print the errors (and write them with
    ``--output``)."""
    # Here, not above: --help loads neither TensorFlow (protocols) nor the weights table (options).
    from training.data.images.options import require_tensorflow
    from training.evaluation.protocols import evaluate as evaluate_protocol

    if args.protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {args.protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    model_path = Path(args.model).expanduser()
    output = Path(args.output).expanduser() if args.output else None
    if output is not None:
        if output.exists():
            raise UserError(f"--output {output} exists: choose a new file")
        run_folder.check_writable(output)
    require_tensorflow()
    result = evaluate_protocol(
        model_path,
        args.data,
        label_names=_label_names(args.labels, None if args.weights else model_path),
        batch=args.batch_size,
        output=output,
        log=print,
        weights=args.weights,
        **{name: getattr(args, name) for name in PASSED_ON},
    )
    print(
        f"{args.protocol}: top-1 error {100 * result['top1_error']:.2f}%, top-5 error "
        f"{100 * result['top5_error']:.2f}% on {result['images']:,} images ({result['classes']} "
        f"classes, {result['image_size']}x{result['image_size']})"
        + (f"; written to {output}" if output else ""),
        flush=True,
    )
    return 0


COMMAND = Command(
    "evaluate",
    description="Top-1 and top-5 error of a trained .keras classifier on a folder of images "
    "or on ImageNet's validation set, with the testing protocols of He et al. 2015.",
    examples=EXAMPLES,
    groups=(add_options,),
    stage=evaluate,
)
build_parser, main = COMMAND.build_parser, COMMAND.main

if __name__ == "__main__":
    COMMAND.exit()
