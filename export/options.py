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
from keras_preact.command_line import UserError

FORMATS = ("savedmodel", "tflite", "onnx", "openvino")
OPTIONAL_FORMATS = ("openvino",)  # need an extra; left out of the default when not installed
QUANTIZATIONS = ("float32", "float16", "dynamic", "bfloat16", "int8")
DEFAULT_QUANTIZATIONS = ("float16", "dynamic", "bfloat16", "int8")
TFLITE_MODES = ("float32", "float16", "dynamic", "int8")
# The low-precision modes each format has (float32 is always made): TFLite files, ONNX's int8
# file (onnxruntime static quantisation), OpenVINO's bfloat16 (a load-time precision of the IR,
# where the CPU has it) and int8 IR (NNCF).
FORMAT_MODES = {
    "tflite": ("float16", "dynamic", "int8"),
    "onnx": ("int8",),
    "openvino": ("bfloat16", "int8"),
}
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
        formats: requested subset of :data:`FORMATS`, in the order given (the default: every
            format whose runtime is installed).
        tflite_modes: TFLite files to write, ``float32`` first; empty unless ``tflite`` is in
            ``formats``.
        onnx_modes: ONNX files to write (``float32``, ``int8``); empty without ``onnx``.
        openvino_modes: OpenVINO artifacts (``float32``, ``bfloat16``, ``int8``); empty without
            ``openvino``.
        skipped: what the defaults asked for that cannot be made here, one phrase each (an
            optional runtime not installed, bfloat16 on a CPU without it).
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
    onnx_modes: tuple[str, ...]
    openvino_modes: tuple[str, ...]
    skipped: tuple[str, ...]
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

    @property
    def needs_onnx(self) -> bool:
        """Whether an ONNX file is converted (published or not): OpenVINO's IR is made from it."""
        return "onnx" in self.formats or "openvino" in self.formats

    @property
    def needs_calibration(self) -> bool:
        """Whether any int8 artifact is made (they all calibrate on the same real images)."""
        return "int8" in (*self.tflite_modes, *self.onnx_modes, *self.openvino_modes)


def plan_export(
    model_path: str | Path,
    output: str | Path,
    *,
    formats: str | Sequence[str] | None = None,
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

    ``formats`` and ``quantize`` are lists or comma-separated strings. ``formats`` defaults to
    every format whose runtime is installed (OpenVINO is an optional extra); naming ``openvino``
    without it installed is an error. ``quantize`` names the low-precision modes besides float32,
    each made for the formats that have it (:data:`FORMAT_MODES`): ``float16`` and ``dynamic``
    (TFLite), ``bfloat16`` (OpenVINO, where the CPU runs it), ``int8`` (TFLite, ONNX, and
    OpenVINO when NNCF is installed). ``max_image_pixels`` defaults to
    ``keras_preact.image_limits.max_pixels()``. The other arguments are :class:`ExportPlan`'s
    attributes.

    Raises:
        UserError: the first bad option, in one line.
    """
    skipped: list[str] = []
    if formats is None:
        formats = FORMATS
        chosen = False
    else:
        formats = parse_list(formats, FORMATS, "format")
        chosen = True
    if not formats:
        raise UserError(f"no export format given; expected some of {', '.join(FORMATS)}")
    quantize = parse_list(quantize, QUANTIZATIONS, "quantization")
    modes = tuple(m for m in QUANTIZATIONS if m == "float32" or m in quantize)
    per_format = {
        f: tuple(m for m in modes if m == "float32" or m in FORMAT_MODES[f]) if f in formats else ()
        for f in FORMAT_MODES
    }
    if "openvino" in formats:
        formats, per_format["openvino"] = _openvino_plan(
            formats, per_format["openvino"], chosen, skipped
        )
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
    int8 = any("int8" in m for m in per_format.values())
    representative_data = _check_representative_data(representative_data, int8)
    model_path = check_model_file(model_path)
    output = check_output_path(output)
    _check_preprocessing(preprocessing)
    return ExportPlan(
        model_path=model_path,
        output=output,
        formats=formats,
        tflite_modes=per_format["tflite"],
        onnx_modes=per_format["onnx"],
        openvino_modes=per_format["openvino"],
        skipped=tuple(skipped),
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


def _openvino_plan(
    formats: tuple[str, ...], modes: tuple[str, ...], chosen: bool, skipped: list[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The formats and OpenVINO modes that can be made here; what cannot is added to
    ``skipped`` (or, for OpenVINO named in ``--formats`` but not installed, an error)."""
    from export.openvino_export import INSTALL_HINT, availability

    found = availability()
    if not found.openvino:
        if chosen:
            raise UserError(
                f"--formats openvino needs OpenVINO, which is not installed: {INSTALL_HINT}"
            )
        skipped.append(f"openvino (not installed: {INSTALL_HINT})")
        return tuple(f for f in formats if f != "openvino"), ()
    if "bfloat16" in modes and not found.bfloat16:
        skipped.append("openvino bfloat16 (this CPU has no bfloat16 instructions)")
        modes = tuple(m for m in modes if m != "bfloat16")
    if "int8" in modes and not found.nncf:
        skipped.append(f"openvino int8 (NNCF is not installed: {INSTALL_HINT})")
        modes = tuple(m for m in modes if m != "int8")
    return formats, modes


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
