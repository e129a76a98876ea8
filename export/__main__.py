"""``python -m export``: .keras -> TF Serving repository, TFLite, ONNX, verified.

    python -m export --model runs/demo/train/best.keras --output runs/demo/export --labels cifar10

Prints the verification table; exit 0 when every artifact agrees with Keras, 1 when one does not
(nothing is published then), 2 on bad input (nothing is written).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # see training/__init__.py

# Imported after the environment defaults above, so TensorFlow sees them when it loads.
from export.options import check_options
from keras_preact.cli import UserError, cli_main

EXIT_VERIFICATION_FAILED = 1


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option as one ``error:`` line (exit 2), without the usage."""

    def error(self, message: str):
        raise UserError(f"{message} (see python -m export --help)")


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (documented in ``--help``)."""
    p = _Parser(
        prog="python -m export",
        description="Export a trained .keras classifier to a TF Serving model repository "
        "(SavedModel), TFLite and ONNX, and verify every artifact against the Keras model.",
    )
    p.add_argument("--model", required=True, help="the .keras file to export")
    p.add_argument("--output", required=True, help="model repository directory (created if new)")
    p.add_argument(
        "--formats",
        default="savedmodel,tflite,onnx",
        help="comma-separated subset of savedmodel,tflite,onnx (default: all)",
    )
    p.add_argument("--name", help="model name in the repository (default: the Keras model name)")
    p.add_argument(
        "--version", type=int, help="version to write (default: next free; never overwritten)"
    )
    p.add_argument(
        "--quantize",
        default="float16,dynamic,int8",
        help="TFLite modes besides float32: subset of float16,dynamic,int8 ('' for none)",
    )
    p.add_argument(
        "--labels",
        help="cifar10, cifar100 or a file with one class name per line "
        "(default: cifar10/cifar100 by class count, else class ids)",
    )
    p.add_argument(
        "--preprocessing",
        default="auto",
        help="input normalisation: auto (the model's own 'preprocess' layer; required if it has "
        "none), cifar10, cifar100, imagenet, imagenet_inception, imagenet_caffe (added in front "
        "of the model) or none",
    )
    p.add_argument("--top-k", type=int, default=5, help="classes in the top_k outputs (default 5)")
    p.add_argument(
        "--representative-data",
        default="sample",
        help="int8 calibration images: 'sample' (embedded CIFAR-10 train images, default) or a "
        ".npy file of uint8 (N, H, W, 3) images",
    )
    p.add_argument(
        "--num-images",
        type=int,
        default=300,
        help="real test images used to verify each artifact (default 300, the whole sample)",
    )
    p.add_argument(
        "--latency-runs", type=int, default=10, help="timed calls per batch size (0: no timing)"
    )
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument(
        "--base-path",
        default="/models",
        help="where TF Serving sees the repository, for models.config (default /models)",
    )
    return p


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run :func:`export.pipeline.export_model`, print the table."""
    args = build_parser().parse_args(argv)
    # Reject what can be rejected before TensorFlow loads (and logs its start-up lines).
    check_options(
        args.model,
        args.output,
        formats=args.formats,
        quantize=args.quantize,
        name=args.name,
        version=args.version,
        top_k=args.top_k,
        num_images=args.num_images,
        representative_data=args.representative_data,
        opset=args.opset,
    )
    from export.pipeline import export_model
    from export.verify import format_table

    result = export_model(
        args.model,
        args.output,
        formats=args.formats,
        name=args.name,
        version=args.version,
        quantize=args.quantize,
        labels=args.labels,
        preprocessing=args.preprocessing,
        top_k=args.top_k,
        representative_data=args.representative_data,
        num_images=args.num_images,
        latency_runs=args.latency_runs,
        opset=args.opset,
        base_path=args.base_path,
    )
    print(format_table(result.report), flush=True)
    if not result.published:
        print(
            f"error: verification failed, nothing published; files and report kept in "
            f"{result.artifacts_dir}",
            file=sys.stderr,
        )
        return EXIT_VERIFICATION_FAILED
    where = result.savedmodel or result.artifacts_dir
    print(f"exported {result.name!r} version {result.version}: {where}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
