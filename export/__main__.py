"""``python -m export``: .keras -> TF Serving repository, TFLite, ONNX, OpenVINO, verified.

    python -m export --model runs/demo/train/best.keras --output runs/demo/export --labels cifar10

Prints the verification table and a closing line that says what each criterion checked (float
artifacts: Keras' probabilities within a tolerance; quantised TFLite files: accuracy lost against
Keras, with their top-1 agreement); exit 0 when every artifact meets its criterion, 1 when one
does not (nothing is published then), 2 on bad input (nothing is written).

The model must be a classifier. One that ends in a softmax is exported as it is; one that ends in
a linear layer (``classifier_activation=None``: logits) gets a softmax added, said in a ``note:``
line and in ``report.json`` (``"model_output": "logits"``), so every artifact serves
probabilities. A feature extractor (``include_top=False``), a head with another activation, or a
model whose outputs on real images are not probabilities is refused in one line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# oneDNN's CPU kernels, which TensorFlow turns on by default only on some Intel CPUs.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# Neither loads TensorFlow: it is imported in main, after parsing, with its log lines filtered.
from export.options import (
    DEFAULT_BASE_PATH,
    DEFAULT_LATENCY_RUNS,
    DEFAULT_NUM_IMAGES,
    DEFAULT_OPSET,
    DEFAULT_QUANTIZATIONS,
    DEFAULT_TOP_K,
    FORMATS,
    SAMPLE,
    plan_export,
)
from keras_preact.command_line import ArgumentParser, cli_main
from keras_preact.native_logs import add_native_logs_option, show_native_logs

EXIT_VERIFICATION_FAILED = 1


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (documented in ``--help``)."""
    p = ArgumentParser(
        prog="python -m export",
        description="Export a trained .keras classifier to a TF Serving model repository "
        "(SavedModel), TFLite, ONNX and OpenVINO, and verify every artifact against the Keras "
        "model.",
    )
    p.add_argument("--model", required=True, help="the .keras file to export")
    p.add_argument("--output", required=True, help="model repository directory (created if new)")
    p.add_argument(
        "--formats",
        help=f"comma-separated subset of {','.join(FORMATS)} (default: all whose runtime is "
        "installed; openvino needs the openvino extra)",
    )
    p.add_argument("--name", help="model name in the repository (default: the Keras model name)")
    p.add_argument(
        "--version", type=int, help="version to write (default: next free; never overwritten)"
    )
    p.add_argument(
        "--quantize",
        default=",".join(DEFAULT_QUANTIZATIONS),
        help=f"low-precision artifacts besides float32: subset of {','.join(DEFAULT_QUANTIZATIONS)} "
        "('' for none); float16 and dynamic are TFLite files, bfloat16 an OpenVINO precision "
        "(where the CPU has it), int8 a TFLite, an ONNX and an OpenVINO file, all calibrated on "
        "--representative-data",
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
    p.add_argument(
        "--bytes-resize",
        default="stretch",
        help="how serving_bytes sizes an encoded image: stretch (the whole image resized to the "
        "model's input; default) or center-crop (the shorter side resized to 256/224 of the "
        "input and the centre cropped, as training.images validates and training.evaluate "
        "--protocol center tests)",
    )
    p.add_argument(
        "--max-image-pixels",
        type=int,
        help="the largest encoded image serving_bytes decodes, in pixels (width x height, read "
        "from its header before decoding; larger ones are refused). Default: "
        "$KERAS_PREACT_MAX_IMAGE_PIXELS, else 67108864 (8192 x 8192)",
    )
    p.add_argument(
        "--top-k",
        type=int,
        default=DEFAULT_TOP_K,
        help=f"classes in the top_k outputs (default {DEFAULT_TOP_K})",
    )
    p.add_argument(
        "--representative-data",
        default=SAMPLE,
        help=f"int8 calibration images: '{SAMPLE}' (embedded CIFAR-10 train images, default) or a "
        ".npy file of uint8 (N, H, W, 3) images",
    )
    p.add_argument(
        "--num-images",
        type=int,
        default=DEFAULT_NUM_IMAGES,
        help=f"real test images used to verify each artifact (default {DEFAULT_NUM_IMAGES}, the "
        "whole sample)",
    )
    p.add_argument(
        "--latency-runs",
        type=int,
        default=DEFAULT_LATENCY_RUNS,
        help=f"timed calls per batch size (0: no timing; default {DEFAULT_LATENCY_RUNS})",
    )
    p.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})"
    )
    p.add_argument(
        "--base-path",
        default=DEFAULT_BASE_PATH,
        help=f"where TF Serving sees the repository, for models.config (default {DEFAULT_BASE_PATH})",
    )
    add_native_logs_option(p)
    return p


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments into an export plan, run it (:func:`export.pipeline.run_export`), print
    the table."""
    args = build_parser().parse_args(argv)
    if args.native_logs:
        show_native_logs()
    plan = plan_export(
        args.model,
        args.output,
        formats=args.formats,
        quantize=args.quantize,
        name=args.name,
        version=args.version,
        labels=args.labels,
        preprocessing=args.preprocessing,
        bytes_resize=args.bytes_resize,
        max_image_pixels=args.max_image_pixels,
        top_k=args.top_k,
        representative_data=args.representative_data,
        num_images=args.num_images,
        latency_runs=args.latency_runs,
        opset=args.opset,
        base_path=args.base_path,
    )
    from export.pipeline import run_export
    from export.verify import format_table

    result = run_export(plan)
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
