"""The export plan: every option of an export, checked once, before anything is loaded or written.

:func:`plan_export` turns the command line's (or :func:`export.export_model`'s) arguments into a
frozen :class:`ExportPlan`; every later stage reads its choices from the plan. All checks but the
last need no TensorFlow, so ``python -m export`` rejects a bad option in one line before
TensorFlow is even imported.
"""

from __future__ import annotations

import dataclasses
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from keras_preact import image_limits
from keras_preact.cli import UserError

FORMATS = ("savedmodel", "tflite", "onnx")
QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")  # TFLite modes; float32 always made
DEFAULT_QUANTIZATIONS = ("float16", "dynamic", "int8")
# tf2onnx 1.17 converts to opsets up to 18; 13 is the oldest this export is tested against
# and what older runtimes (onnxruntime >= 1.7, TensorRT 8) accept.
ONNX_OPSETS = range(13, 19)
DEFAULT_OPSET = 17  # supported by tf2onnx 1.17 (max 18) and onnxruntime >= 1.13
DEFAULT_TOP_K = 5
DEFAULT_NUM_IMAGES = 300  # the whole test split of the embedded sample
DEFAULT_LATENCY_RUNS = 10
BYTES_RESIZES = ("stretch", "center-crop")
"""How ``serving_bytes`` sizes an encoded image: the whole image resized to the model's input, or
the shorter side resized to 256/224 of it and the centre cropped (the view ``training.images``
validates on and ``training.evaluate --protocol center`` tests on)."""
DEFAULT_BASE_PATH = "/models"  # where the compose file mounts the repository in the container
SAMPLE = "sample"  # representative data: the embedded sample's train images
ARTIFACTS_DIR = "artifacts"  # DIR/artifacts/<name>/<version>/: everything but the SavedModel
# A model name: a directory of the repository and a segment of TF Serving's URLs.
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclasses.dataclass(frozen=True)
class ExportPlan:
    """What to export, where and how: checked options (see :func:`plan_export`).

    Attributes:
        model_path: the ``.keras`` (or legacy ``.h5``) file, a zip archive that exists.
        output: the model repository directory (it may not exist yet; it is not a file).
        formats: requested subset of :data:`FORMATS`, in the order given.
        tflite_modes: TFLite files to write, ``float32`` first; empty unless ``tflite`` is in
            ``formats``.
        name: model name in the repository, or ``None`` for the Keras model's own name.
        version: version to write, or ``None`` for the next free one.
        labels: ``cifar10``, ``cifar100``, a labels file, or ``None`` (by class count).
        preprocessing: ``auto``, ``none`` or a dataset of ``keras_preact.DATASET_STATS``.
        bytes_resize: one of :data:`BYTES_RESIZES`.
        max_image_pixels: the largest image (width x height, read from its header) that
            ``serving_bytes`` decodes (``keras_preact.image_limits``).
        top_k: classes in the ``top_k_*`` serving outputs.
        representative_data: int8 calibration images: :data:`SAMPLE`, an existing ``.npy``
            file or a non-empty uint8 array; ``None`` when no int8 file is written.
        num_images: how many of the sample's test images verification uses.
        latency_runs: timed calls per batch size in verification (0: no timing).
        opset: ONNX opset.
        base_path: where TF Serving sees the repository (``models.config`` base paths).
    """

    model_path: Path
    output: Path
    formats: tuple[str, ...]
    tflite_modes: tuple[str, ...]
    name: str | None
    version: int | None
    labels: str | None
    preprocessing: str
    bytes_resize: str
    max_image_pixels: int
    top_k: int
    representative_data: str | Path | np.ndarray | None
    num_images: int
    latency_runs: int
    opset: int
    base_path: str

    @property
    def onnx_opset(self) -> int | None:
        """The ONNX opset, or ``None`` when no ONNX file is written."""
        return self.opset if "onnx" in self.formats else None


def plan_export(
    model_path: str | Path,
    output: str | Path,
    *,
    formats: str | Sequence[str] = FORMATS,
    quantize: str | Sequence[str] = DEFAULT_QUANTIZATIONS,
    name: str | None = None,
    version: int | None = None,
    labels: str | None = None,
    preprocessing: str = "auto",
    bytes_resize: str = "stretch",
    max_image_pixels: int | None = None,
    top_k: int = DEFAULT_TOP_K,
    representative_data: str | Path | np.ndarray | None = SAMPLE,
    num_images: int = DEFAULT_NUM_IMAGES,
    latency_runs: int = DEFAULT_LATENCY_RUNS,
    opset: int = DEFAULT_OPSET,
    base_path: str = DEFAULT_BASE_PATH,
) -> ExportPlan:
    """Check every option, cheapest first, and return the plan; loads and writes nothing.

    ``formats`` and ``quantize`` are lists or comma-separated strings; ``quantize`` names the
    TFLite modes besides float32 (subset of ``float16``, ``dynamic``, ``int8``);
    ``max_image_pixels`` defaults to ``keras_preact.image_limits.max_pixels()``. The other
    arguments are :class:`ExportPlan`'s attributes.

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
    if bytes_resize not in BYTES_RESIZES:
        raise UserError(
            f"unknown --bytes-resize {bytes_resize!r}; expected one of {', '.join(BYTES_RESIZES)}"
        )
    if max_image_pixels is None:
        max_image_pixels = image_limits.max_pixels()
    image_limits.check_max_pixels(max_image_pixels)
    if top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {top_k}")
    if num_images < 1:
        raise UserError(f"--num-images must be at least 1, got {num_images}")
    if latency_runs < 0:
        raise UserError(f"--latency-runs must be 0 (no timing) or more, got {latency_runs}")
    representative_data = _check_representative_data(representative_data, "int8" in modes)
    model_path = check_model_file(model_path)
    output = check_output_path(output)
    _check_preprocessing(preprocessing)
    return ExportPlan(
        model_path=model_path,
        output=output,
        formats=formats,
        tflite_modes=modes,
        name=name,
        version=version,
        labels=labels,
        preprocessing=preprocessing,
        bytes_resize=bytes_resize,
        max_image_pixels=max_image_pixels,
        top_k=top_k,
        representative_data=representative_data,
        num_images=num_images,
        latency_runs=latency_runs,
        opset=opset,
        base_path=base_path,
    )


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
    if not MODEL_NAME.match(name) or name == ARTIFACTS_DIR:
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


def _check_representative_data(data, needed: bool) -> str | Path | np.ndarray | None:
    """The calibration images' source when int8 is requested (else ``None``)."""
    if not needed:
        return None
    if data is None or (isinstance(data, np.ndarray) and len(data) == 0):
        raise UserError(
            "int8 quantization needs representative data (real images to calibrate the "
            "activation ranges); none was given"
        )
    if isinstance(data, np.ndarray):
        return data
    if str(data) == SAMPLE:
        return SAMPLE
    if not Path(data).is_file():
        raise UserError(f"representative data file not found: {data}")
    return Path(data)


def _check_preprocessing(preprocessing: str) -> None:
    # Checked last: the dataset statistics live with the models, which import Keras.
    from keras_preact.preprocessing import PREPROCESSING_CHOICES

    if preprocessing not in PREPROCESSING_CHOICES:
        raise UserError(
            f"unknown preprocessing {preprocessing!r}; expected one of "
            f"{', '.join(PREPROCESSING_CHOICES)}"
        )
