"""The whole export: .keras -> SavedModel (TF Serving layout) -> TFLite, ONNX -> verify -> publish.

Layout of the output directory (a TF Serving model repository)::

    DIR/models.config                        ModelServerConfig for every model in DIR
    DIR/<name>/<version>/                    serving SavedModel (+ assets.extra warm-up requests)
    DIR/artifacts/<name>/<version>/          TFLite files, ONNX file, labels.txt, report.json
    DIR/artifacts/<name>/rejected-<version>-<time>/   a run whose verification failed

Everything is built in a hidden staging directory inside DIR and verified there; only then are
the version directories renamed into place and ``models.config`` replaced. Bad input is rejected
before anything is written, and an existing version is never touched.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from export import repository
from export.images import resize_uint8, sample_images
from export.labels import resolve_labels
from export.model import PREPROCESSING_CHOICES, load_keras_model, prepare_inference_model
from export.onnx_export import OPSET, OnnxRunner, export_onnx
from export.options import (
    ARTIFACTS_DIR,
    DEFAULT_QUANTIZATIONS,
    FORMATS,
    check_name,
    check_options,
)
from export.savedmodel import (
    BYTES_SIGNATURE,
    DEFAULT_SIGNATURE,
    DEFAULT_TOP_K,
    UINT8_SIGNATURE,
    SavedModelRunner,
    export_savedmodel,
)
from export.tflite import DEFAULT_CALIBRATION_IMAGES, TFLiteRunner
from export.tflite import export_tflite as write_tflite
from export.verify import Artifact, Report, verify, write_report
from training.errors import UserError

DEFAULT_NUM_IMAGES = 300  # the whole test split of the embedded sample


@dataclasses.dataclass
class ExportResult:
    """What an export produced and how verification went.

    Attributes:
        repository: the model repository directory (``--output``).
        name: model name in the repository.
        version: the version written.
        savedmodel: the published SavedModel directory (``None`` if not requested or rejected).
        artifacts_dir: where TFLite/ONNX files and ``report.json`` are (or were kept, if rejected).
        files: artifact name -> path.
        report: the verification report.
        published: True when verification passed and the version is in place.
    """

    repository: Path
    name: str
    version: int
    savedmodel: Path | None
    artifacts_dir: Path
    files: dict[str, Path]
    report: Report
    published: bool


def load_representative_images(path: str | Path, image_size: tuple[int, int]) -> np.ndarray:
    """uint8 ``(N, H, W, 3)`` images from a ``.npy`` file (resized to the model's input)."""
    path = Path(path)
    try:
        images = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read representative data {path}: {e}") from None
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise UserError(
            f"representative data {path} holds {images.dtype} {images.shape}; expected uint8 "
            "images of shape (N, H, W, 3)"
        )
    if len(images) == 0:
        raise UserError(f"int8 quantization needs representative data, but {path} has no images")
    return resize_uint8(images, image_size)


def _default_name(model_name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_name).strip("_.-") or "model"
    return name if name != ARTIFACTS_DIR else "model"


def export_model(
    model_path: str | Path,
    output: str | Path,
    *,
    formats: str | Sequence[str] = FORMATS,
    name: str | None = None,
    version: int | None = None,
    quantize: str | Sequence[str] = DEFAULT_QUANTIZATIONS,
    labels: str | None = None,
    preprocessing: str = "auto",
    top_k: int = DEFAULT_TOP_K,
    representative_data: str | Path | np.ndarray | None = "sample",
    num_images: int = DEFAULT_NUM_IMAGES,
    latency_runs: int = 10,
    opset: int = OPSET,
    base_path: str = repository.DEFAULT_BASE_PATH,
    float_tolerance: float | None = None,
    accuracy_margins: dict[str, float] | None = None,
    log: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export a ``.keras`` classifier to TF Serving / TFLite / ONNX and verify every artifact.

    Args:
        model_path: the ``.keras`` file (e.g. ``runs/demo/train/best.keras``).
        output: the model repository directory (created if missing).
        formats: subset of ``savedmodel``, ``tflite``, ``onnx`` (list or comma-separated).
        name: model name in the repository; defaults to the Keras model's name.
        version: version number to write; defaults to the next free one. Never overwritten.
        quantize: TFLite modes besides float32: subset of ``float16``, ``dynamic``, ``int8``.
        labels: ``cifar10``, ``cifar100`` or a file with one class name per line; defaults by
            class count (see :func:`export.labels.resolve_labels`).
        preprocessing: see :func:`export.model.prepare_inference_model`.
        top_k: number of classes in the ``top_k_*`` serving outputs.
        representative_data: int8 calibration images: ``"sample"`` (the embedded sample's
            train images), a ``.npy`` path, a uint8 array, or ``None`` (then int8 is an error).
        num_images: how many of the sample's test images verification uses.
        latency_runs: timed calls per batch size in verification (0: no timing).
        opset: ONNX opset.
        base_path: where TF Serving sees the repository (``models.config`` base paths).
        float_tolerance: override of :data:`export.verify.FLOAT_TOLERANCE`.
        accuracy_margins: override of :data:`export.verify.ACCURACY_MARGINS`.
        log: progress messages (default: stderr).

    Raises:
        UserError: bad input; nothing has been written.
    """
    say = log or (lambda message: print(message, file=sys.stderr, flush=True))
    model_path, output = Path(model_path), Path(output)
    formats, modes = check_options(
        model_path,
        output,
        formats,
        quantize,
        name,
        version,
        top_k,
        num_images,
        representative_data,
    )
    if preprocessing not in PREPROCESSING_CHOICES:
        raise UserError(
            f"unknown preprocessing {preprocessing!r}; expected one of "
            f"{', '.join(PREPROCESSING_CHOICES)}"
        )
    config_path = output / repository.MODELS_CONFIG
    if config_path.exists():
        repository.read_models_config(config_path)
    if name is not None:
        repository.choose_version(output, name, version)

    started = time.perf_counter()
    keras_model = load_keras_model(model_path)
    inference = prepare_inference_model(keras_model, preprocessing)
    class_names = resolve_labels(labels, inference.classes)
    name = check_name(name or _default_name(keras_model.name))
    version = repository.choose_version(output, name, version)
    calibration = None
    if "int8" in modes:
        if isinstance(representative_data, np.ndarray):
            calibration = resize_uint8(representative_data, inference.image_size)
        elif str(representative_data) == "sample":
            calibration, _ = sample_images(
                "train", inference.image_size, DEFAULT_CALIBRATION_IMAGES
            )
        else:
            calibration = load_representative_images(representative_data, inference.image_size)
    # All input checked: only now is anything created.
    repository.check_output_dir(output)
    say(
        f"exporting {name!r} version {version} ({inference.image_size[0]}x"
        f"{inference.image_size[1]}, {inference.classes} classes, source dtype policy "
        f"{inference.source_dtype_policy}, preprocessing: {inference.preprocessing})"
    )

    images, image_labels = sample_images("test", inference.image_size, num_images)
    # The sample's labels are CIFAR-10 classes: accuracy only means something for such a model.
    if inference.classes != 10 or tuple(class_names) != tuple(resolve_labels("cifar10", 10)):
        image_labels = None

    with repository.staging_dir(output) as staging:
        files: dict[str, Path] = {}
        artifacts: list[Artifact] = []
        staged_savedmodel = staging / "savedmodel"
        staged_artifacts = staging / "artifacts"
        staged_artifacts.mkdir()
        (staged_artifacts / "labels.txt").write_text("\n".join(class_names) + "\n", "utf-8")

        # The SavedModel is always built: TFLite and ONNX are converted from its
        # "probabilities" signature. It is published only when asked for.
        t = time.perf_counter()
        export_savedmodel(
            inference,
            staged_savedmodel,
            class_names,
            top_k=top_k,
            warmup_images=images if "savedmodel" in formats else None,
            model_name=name,
        )
        say(f"savedmodel: 4 signatures + warm-up requests ({time.perf_counter() - t:.1f} s)")
        if "savedmodel" in formats:
            files["savedmodel"] = staged_savedmodel
            for signature in (DEFAULT_SIGNATURE, UINT8_SIGNATURE, BYTES_SIGNATURE):
                runner = SavedModelRunner(staged_savedmodel, signature)
                artifacts.append(
                    Artifact(f"savedmodel:{signature}", "float", staged_savedmodel, runner)
                )
        if "tflite" in formats:
            t = time.perf_counter()
            tflite_files = write_tflite(
                staged_savedmodel, staged_artifacts, modes, calibration, stem=name
            )
            say(f"tflite: {', '.join(tflite_files)} ({time.perf_counter() - t:.1f} s)")
            for mode, path in tflite_files.items():
                files[f"tflite:{mode}"] = path
                check = "float" if mode == "float32" else mode
                artifacts.append(Artifact(f"tflite:{mode}", check, path, TFLiteRunner(path)))
        if "onnx" in formats:
            t = time.perf_counter()
            onnx_path = export_onnx(staged_savedmodel, staged_artifacts / f"{name}.onnx", opset)
            say(f"onnx: opset {opset} ({time.perf_counter() - t:.1f} s)")
            files["onnx"] = onnx_path
            artifacts.append(Artifact("onnx", "float", onnx_path, OnnxRunner(onnx_path)))

        say(f"verifying {len(artifacts)} artifacts on {len(images)} real images")
        model = inference.model

        def keras_runner(batch: np.ndarray) -> np.ndarray:
            return np.asarray(model.predict_on_batch(batch.astype(np.float32)))

        tolerances = {}
        if float_tolerance is not None:
            tolerances["float_tolerance"] = float_tolerance
        report = verify(
            keras_runner,
            artifacts,
            images,
            image_labels,
            latency_runs=latency_runs,
            accuracy_margins=accuracy_margins,
            metadata={
                "model": str(model_path),
                "name": name,
                "version": version,
                "formats": list(formats),
                "tflite_modes": list(modes),
                "onnx_opset": opset if "onnx" in formats else None,
                "image_size": list(inference.image_size),
                "classes": inference.classes,
                "labels": labels or "default",
                "preprocessing": inference.preprocessing,
                "source_dtype_policy": inference.source_dtype_policy,
                "reference": "Keras model, float32",
                "images": "embedded CIFAR-10 sample, test split",
                "export_seconds": round(time.perf_counter() - started, 1),
            },
            **tolerances,
        )
        write_report(report, staged_artifacts / "report.json")

        artifacts_root = output / ARTIFACTS_DIR / name
        if not report.passed:
            kept = artifacts_root / f"rejected-{version}-{time.strftime('%Y%m%d-%H%M%S')}"
            if "savedmodel" in formats:
                staged_savedmodel.rename(staged_artifacts / "savedmodel")
            repository.publish(staged_artifacts, kept)
            files = _moved(files, staging, kept)
            return ExportResult(output, name, version, None, kept, files, report, published=False)

        savedmodel_target = output / name / str(version)
        artifacts_target = artifacts_root / str(version)
        config = repository.models_config_with(output, name, base_path)
        repository.publish(staged_artifacts, artifacts_target)
        if "savedmodel" in formats:
            repository.publish(staged_savedmodel, savedmodel_target)
            repository.write_models_config(output, config)
        files = {
            key: (
                savedmodel_target
                if key == "savedmodel"
                else artifacts_target / path.relative_to(staged_artifacts)
            )
            for key, path in files.items()
        }
        say(f"published version {version} in {output} ({time.perf_counter() - started:.0f} s)")
        return ExportResult(
            output,
            name,
            version,
            savedmodel_target if "savedmodel" in formats else None,
            artifacts_target,
            files,
            report,
            published=True,
        )


def _moved(files: dict[str, Path], staging: Path, kept: Path) -> dict[str, Path]:
    moved = {}
    for key, path in files.items():
        relative = path.relative_to(staging)
        parts = relative.parts[1:] if relative.parts[0] == "artifacts" else relative.parts
        moved[key] = kept.joinpath(*parts)
    return moved
