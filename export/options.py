"""Checks of export options that need no TensorFlow, so the CLI rejects bad input in one line
before TensorFlow is even imported (and prints its start-up logs)."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

from keras_preact.cli import UserError

FORMATS = ("savedmodel", "tflite", "onnx")
QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")  # TFLite modes; float32 always made
DEFAULT_QUANTIZATIONS = ("float16", "dynamic", "int8")
# tf2onnx 1.17 converts to opsets up to 18; 13 is the oldest this export is tested against
# and what older runtimes (onnxruntime >= 1.7, TensorRT 8) accept.
ONNX_OPSETS = range(13, 19)
ARTIFACTS_DIR = "artifacts"  # DIR/artifacts/<name>/<version>/: everything but the SavedModel
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def parse_list(value: str | Sequence[str], allowed: Sequence[str], what: str) -> tuple[str, ...]:
    """Split a comma-separated option (or take a list) and check every item is allowed."""
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    items = [v for v in items if v]
    for item in items:
        if item not in allowed:
            raise UserError(
                f"unknown {what} {item!r}; expected a comma-separated subset of "
                f"{', '.join(allowed)}"
            )
    return tuple(items)


def check_name(name: str) -> str:
    """Return ``name`` if it is a usable model name (a directory and URL path segment)."""
    if not _NAME.match(name) or name == ARTIFACTS_DIR:
        raise UserError(
            f"invalid model name {name!r}: use letters, digits, '_', '-' or '.', starting with a "
            f"letter or digit (and not {ARTIFACTS_DIR!r})"
        )
    return name


def check_model_file(path: str | Path) -> Path:
    """The model path, if it names an existing ``.keras`` zip archive (or legacy ``.h5``) file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"model file not found: {path}")
    if not path.is_file():
        raise UserError(f"model path {path} is not a file; expected a .keras file")
    if path.suffix not in (".keras", ".h5"):
        raise UserError(f"{path} is not a Keras model file; expected a .keras (or legacy .h5) file")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not a Keras model: a .keras file is a zip archive")
    return path


def check_output_path(output: str | Path) -> Path:
    """The output path, unless it is an existing file (it must be a directory, new or not)."""
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise UserError(f"--output {output} is a file; expected a directory (new or existing)")
    return output


def check_options(
    model_path: str | Path,
    output: str | Path,
    formats: str | Sequence[str],
    quantize: str | Sequence[str],
    name: str | None,
    version: int | None,
    top_k: int,
    num_images: int,
    representative_data,
    opset: int = 17,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Check everything that can be checked without loading anything.

    Returns:
        ``(formats, tflite_modes)``: the requested formats and the TFLite modes to write (empty
        unless ``tflite`` is requested; float32 first whenever it is).

    Raises:
        UserError: the first bad option, in one line.
    """
    formats = parse_list(formats, FORMATS, "format")
    if not formats:
        raise UserError(f"no export format given; expected some of {', '.join(FORMATS)}")
    quantize = parse_list(quantize, QUANTIZATIONS, "quantization")
    modes = tuple(m for m in QUANTIZATIONS if m == "float32" or m in quantize)
    modes = modes if "tflite" in formats else ()
    if name is not None:
        check_name(name)
    if version is not None and version < 1:
        raise UserError(f"--version must be a positive integer, got {version}")
    if "onnx" in formats and opset not in ONNX_OPSETS:
        raise UserError(
            f"--opset {opset} is not supported; choose {ONNX_OPSETS.start}..{ONNX_OPSETS.stop - 1}"
        )
    if top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {top_k}")
    if num_images < 1:
        raise UserError(f"--num-images must be at least 1, got {num_images}")
    if "int8" in modes:
        if representative_data is None or (
            not isinstance(representative_data, (str, Path)) and len(representative_data) == 0
        ):
            raise UserError(
                "int8 quantization needs representative data (real images to calibrate the "
                "activation ranges); none was given"
            )
        is_file_name = (
            isinstance(representative_data, (str, Path)) and str(representative_data) != "sample"
        )
        if is_file_name and not Path(representative_data).is_file():
            raise UserError(f"representative data file not found: {representative_data}")
    check_model_file(model_path)
    check_output_path(output)
    return formats, modes
