"""The whole export: .keras -> SavedModel (TF Serving layout) -> TFLite, ONNX -> OpenVINO ->
verify -> publish.

Layout of the output directory (a TF Serving model repository)::

    DIR/models.config                        ModelServerConfig for every model in DIR
    DIR/<name>/<version>/                    serving SavedModel (+ assets.extra warm-up requests)
    DIR/artifacts/<name>/<version>/          TFLite files, ONNX files, labels.txt, report.json
    DIR/artifacts/<name>/<version>/openvino/ OpenVINO IR (.xml + .bin), float32 and int8
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from export import repository
from export.images import resize_uint8, sample_images
from export.labels import resolve_labels
from export.model import InferenceModel, load_keras_model, prepare_inference_model
from export.onnx_export import OnnxRunner, export_onnx, quantize_onnx
from export.options import ARTIFACTS_DIR, SAMPLE, ExportPlan, check_name, plan_export
from export.savedmodel import (
    BYTES_SIGNATURE,
    DEFAULT_SIGNATURE,
    UINT8_SIGNATURE,
    SavedModelRunner,
    export_savedmodel,
)
from export.tflite import DEFAULT_CALIBRATION_IMAGES, TFLiteRunner
from export.tflite import export_tflite as write_tflite
from export.verify import Artifact, Report, verify, write_report
from keras_preact.command_line import UserError


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


def export_model(
    model_path: str | Path,
    output: str | Path,
    *,
    float_tolerance: float | None = None,
    accuracy_margins: dict[str, float] | None = None,
    log: Callable[[str], None] | None = None,
    **options: Any,
) -> ExportResult:
    """Export a ``.keras`` classifier to TF Serving / TFLite / ONNX and verify every artifact:
    :func:`export.options.plan_export`, then :func:`run_export`.

    Args:
        model_path: the ``.keras`` file (e.g. ``runs/demo/train/best.keras``).
        output: the model repository directory (created if missing).
        float_tolerance, accuracy_margins, log: see :func:`run_export`.
        **options: the options of :func:`export.options.plan_export` (the attributes of
            :class:`export.options.ExportPlan`): ``formats``, ``quantize``, ``name``,
            ``version``, ``labels``, ``preprocessing``, ``bytes_resize``, ``top_k``, ``representative_data``,
            ``num_images``, ``latency_runs``, ``opset``, ``base_path``.

    Raises:
        UserError: bad input; nothing has been written.
    """
    return run_export(
        plan_export(model_path, output, **options),
        float_tolerance=float_tolerance,
        accuracy_margins=accuracy_margins,
        log=log,
    )


def run_export(
    plan: ExportPlan,
    *,
    float_tolerance: float | None = None,
    accuracy_margins: dict[str, float] | None = None,
    log: Callable[[str], None] | None = None,
) -> ExportResult:
    """Carry out a checked :class:`export.options.ExportPlan`: build every artifact in a staging
    directory, verify it, publish it when verification passes.

    Args:
        plan: what :func:`export.options.plan_export` returned.
        float_tolerance: override of :data:`export.verify.FLOAT_TOLERANCE`.
        accuracy_margins: override of :data:`export.verify.ACCURACY_MARGINS`.
        log: progress messages (default: stderr).
    """
    say = log or (lambda message: print(message, file=sys.stderr, flush=True))
    started = time.perf_counter()
    prepared = _prepare(plan)
    # All input is checked: only now is anything created (or said).
    repository.check_output_dir(plan.output)
    if plan.skipped:
        say(f"skipped: {'; '.join(plan.skipped)}")
    stale = repository.remove_stale_staging_dirs(plan.output)
    if stale:
        say(
            f"removed {len(stale)} staging folder{'s' * (len(stale) > 1)} left by killed "
            f"exports: {', '.join(path.name for path in stale)}"
        )
    inference = prepared.inference
    say(
        f"exporting {prepared.name!r} version {prepared.version} ({inference.image_size[0]}x"
        f"{inference.image_size[1]}, {inference.classes} classes, source dtype policy "
        f"{inference.source_dtype_policy}, preprocessing: {inference.preprocessing})"
    )
    if inference.output == "logits":
        say(
            f"note: {plan.model_path} outputs logits (its last layer is linear); the export adds "
            "a softmax, so every artifact returns probabilities"
        )
    images, image_labels = sample_images("test", inference.image_size, plan.num_images)
    # The sample's labels are CIFAR-10 classes: accuracy only means something for such a model.
    if inference.classes != 10 or tuple(prepared.labels) != resolve_labels("cifar10", 10):
        image_labels = None

    with repository.staging_dir(plan.output) as staging:
        files, artifacts = _build(prepared, staging, images, say)
        say(f"verifying {len(artifacts)} artifacts on {len(images)} real images")
        model = inference.model

        def keras_runner(batch: np.ndarray) -> np.ndarray:
            return np.asarray(model.predict_on_batch(batch.astype(np.float32)))

        report = verify(
            keras_runner,
            artifacts,
            images,
            image_labels,
            latency_runs=plan.latency_runs,
            accuracy_margins=accuracy_margins,
            metadata={
                "model": str(plan.model_path),
                "name": prepared.name,
                "version": prepared.version,
                "formats": list(plan.formats),
                "tflite_modes": list(plan.tflite_modes),
                "onnx_modes": list(plan.onnx_modes),
                "openvino_modes": list(plan.openvino_modes),
                "skipped": list(plan.skipped),
                "onnx_opset": plan.onnx_opset,
                "image_size": list(inference.image_size),
                "classes": inference.classes,
                "labels": plan.labels or "default",
                "preprocessing": inference.preprocessing,
                "bytes_resize": plan.bytes_resize,
                "max_image_pixels": plan.max_image_pixels,
                "model_output": inference.output,
                "source_dtype_policy": inference.source_dtype_policy,
                "reference": "Keras model, float32",
                "images": "embedded CIFAR-10 sample, test split",
                "export_seconds": round(time.perf_counter() - started, 1),
            },
            **({} if float_tolerance is None else {"float_tolerance": float_tolerance}),
        )
        write_report(report, staging / "artifacts" / "report.json")
        result = _publish(prepared, staging, files, report)
    verdict = "published" if result.published else "verification failed, kept aside"
    say(f"{verdict}: version {prepared.version} ({time.perf_counter() - started:.0f} s)")
    return result


@dataclasses.dataclass(frozen=True)
class _Prepared:
    """The plan with what it names loaded and checked: the model, class names, the repository
    name and version, the int8 calibration images."""

    plan: ExportPlan
    inference: InferenceModel
    labels: tuple[str, ...]
    name: str
    version: int
    calibration: np.ndarray | None


def _prepare(plan: ExportPlan) -> _Prepared:
    """Check the repository, load the model, labels and calibration images; writes nothing."""
    config_path = plan.output / repository.MODELS_CONFIG
    if config_path.exists():
        repository.read_models_config(config_path)
    if plan.name is not None:  # an existing version is refused before the slow model load
        repository.choose_version(plan.output, plan.name, plan.version)
    keras_model = load_keras_model(plan.model_path)
    inference = prepare_inference_model(keras_model, plan.preprocessing)
    check_probabilities(inference, plan.model_path)
    height, width = inference.image_size
    if plan.bytes_resize == "center-crop" and height != width:
        raise UserError(
            f"--bytes-resize center-crop needs a square input; {plan.model_path} takes "
            f"{height}x{width} images"
        )
    class_names = resolve_labels(plan.labels, inference.classes)
    name = plan.name or check_name(_default_name(keras_model.name))
    version = repository.choose_version(plan.output, name, plan.version)
    calibration = None
    if plan.needs_calibration:
        calibration = calibration_images(plan.representative_data, inference.image_size)
    return _Prepared(plan, inference, class_names, name, version, calibration)


def check_probabilities(inference: InferenceModel, model_path: Path, count: int = 8) -> None:
    """Refuse a model whose outputs (with the softmax the export adds to logits) are not class
    probabilities on real images: rows of non-negative numbers that sum to 1."""
    images, _ = sample_images("test", inference.image_size, count)
    outputs = np.asarray(inference.model.predict_on_batch(images.astype(np.float32)), np.float64)
    sums = outputs.sum(axis=1)
    if not (
        np.all(np.isfinite(outputs)) and outputs.min() >= -1e-6 and np.allclose(sums, 1, atol=1e-3)
    ):
        raise UserError(
            f"{model_path} does not output class probabilities: on {count} real images its "
            f"outputs range over [{outputs.min():.3g}, {outputs.max():.3g}] and rows sum to "
            f"{sums.min():.3g}..{sums.max():.3g}; export serves softmax probabilities"
        )


def calibration_images(source: str | Path | np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """uint8 ``(N, H, W, 3)`` int8 calibration images at the model's input size, from
    :data:`export.options.SAMPLE` (the embedded sample's train images), a ``.npy`` file of such
    images or an array of them."""
    if isinstance(source, str) and source == SAMPLE:
        return sample_images("train", image_size, DEFAULT_CALIBRATION_IMAGES)[0]
    where = "representative data array"
    images = source
    if not isinstance(source, np.ndarray):
        where = f"representative data {source}"
        try:
            images = np.load(source, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot read {where}: {e}") from None
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise UserError(
            f"{where} holds {images.dtype} {images.shape}; expected uint8 images of shape "
            "(N, H, W, 3)"
        )
    if len(images) == 0:
        raise UserError(f"int8 quantization needs representative data, but the {where} is empty")
    return resize_uint8(images, image_size)


def _default_name(model_name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_name).strip("_.-") or "model"
    return name if name != ARTIFACTS_DIR else "model"


def _build(
    prepared: _Prepared, staging: Path, images: np.ndarray, say: Callable[[str], None]
) -> tuple[dict[str, Path], list[Artifact]]:
    """Write every requested artifact under ``staging``; return them and their runners."""
    plan = prepared.plan
    files: dict[str, Path] = {}
    artifacts: list[Artifact] = []
    staged_savedmodel = staging / "savedmodel"
    staged_artifacts = staging / "artifacts"
    staged_artifacts.mkdir()
    (staged_artifacts / "labels.txt").write_text("\n".join(prepared.labels) + "\n", "utf-8")

    # The SavedModel is always built: TFLite and ONNX are converted from its "probabilities"
    # signature. It is published only when asked for.
    t = time.perf_counter()
    export_savedmodel(
        prepared.inference,
        staged_savedmodel,
        prepared.labels,
        top_k=plan.top_k,
        warmup_images=images if "savedmodel" in plan.formats else None,
        model_name=prepared.name,
        bytes_resize=plan.bytes_resize,
        max_pixels=plan.max_image_pixels,
    )
    say(f"savedmodel: 4 signatures + warm-up requests ({time.perf_counter() - t:.1f} s)")
    if "savedmodel" in plan.formats:
        files["savedmodel"] = staged_savedmodel
        loaded = tf.saved_model.load(str(staged_savedmodel))
        for signature in (DEFAULT_SIGNATURE, UINT8_SIGNATURE, BYTES_SIGNATURE):
            runner = SavedModelRunner(loaded, signature, plan.bytes_resize)
            artifacts.append(
                Artifact(f"savedmodel:{signature}", "float", staged_savedmodel, runner)
            )
    if plan.tflite_modes:
        t = time.perf_counter()
        tflite_files = write_tflite(
            staged_savedmodel,
            staged_artifacts,
            plan.tflite_modes,
            prepared.calibration,
            stem=prepared.name,
        )
        say(f"tflite: {', '.join(tflite_files)} ({time.perf_counter() - t:.1f} s)")
        for mode, path in tflite_files.items():
            files[f"tflite:{mode}"] = path
            check = "float" if mode == "float32" else mode
            artifacts.append(Artifact(f"tflite:{mode}", check, path, TFLiteRunner(path)))
    if plan.needs_onnx:
        # OpenVINO's IR is converted from the ONNX file, which is published only when asked for.
        t = time.perf_counter()
        onnx_dir = staged_artifacts if "onnx" in plan.formats else staging
        onnx_path = export_onnx(staged_savedmodel, onnx_dir / f"{prepared.name}.onnx", plan.opset)
        say(f"onnx: opset {plan.opset} ({time.perf_counter() - t:.1f} s)")
        if "onnx" in plan.formats:
            files["onnx"] = onnx_path
            artifacts.append(Artifact("onnx", "float", onnx_path, OnnxRunner(onnx_path)))
        if "int8" in plan.onnx_modes:
            t = time.perf_counter()
            int8_path = quantize_onnx(
                onnx_path, staged_artifacts / f"{prepared.name}_int8.onnx", prepared.calibration
            )
            say(f"onnx: int8, {len(prepared.calibration)} images ({time.perf_counter() - t:.1f} s)")
            files["onnx:int8"] = int8_path
            artifacts.append(Artifact("onnx:int8", "int8", int8_path, OnnxRunner(int8_path)))
        if plan.openvino_modes:
            _build_openvino(
                prepared, onnx_path, staged_artifacts / "openvino", files, artifacts, say
            )
    return files, artifacts


def _build_openvino(
    prepared: _Prepared,
    onnx_path: Path,
    folder: Path,
    files: dict[str, Path],
    artifacts: list[Artifact],
    say: Callable[[str], None],
) -> None:
    """The OpenVINO IR from the ONNX file, its precisions and its int8 form (NNCF)."""
    # Imported here: OpenVINO is an optional extra, and the plan only asks for it when installed.
    from export.openvino_export import OpenVINORunner, export_openvino, quantize_openvino

    folder.mkdir()
    t = time.perf_counter()
    xml = export_openvino(onnx_path, folder / f"{prepared.name}.xml")
    say(f"openvino: IR from ONNX ({time.perf_counter() - t:.1f} s)")
    for mode in ("float32", "bfloat16"):
        if mode in prepared.plan.openvino_modes:
            runner = OpenVINORunner(xml, precision=mode)
            files[f"openvino:{mode}"] = xml
            check = "float" if mode == "float32" else mode
            artifacts.append(Artifact(f"openvino:{mode}", check, xml, runner, runner.precision_run))
    if "int8" in prepared.plan.openvino_modes:
        t = time.perf_counter()
        int8 = quantize_openvino(xml, prepared.calibration, folder / f"{prepared.name}_int8.xml")
        runner = OpenVINORunner(int8)
        say(
            f"openvino: int8 (NNCF), {len(prepared.calibration)} images ({time.perf_counter() - t:.1f} s)"
        )
        files["openvino:int8"] = int8
        artifacts.append(Artifact("openvino:int8", "int8", int8, runner, runner.precision_run))


def _publish(
    prepared: _Prepared, staging: Path, files: dict[str, Path], report: Report
) -> ExportResult:
    """Rename the staged version into place (or aside, when verification failed)."""
    plan, name, version = prepared.plan, prepared.name, prepared.version
    staged_savedmodel = staging / "savedmodel"
    staged_artifacts = staging / "artifacts"
    artifacts_root = plan.output / ARTIFACTS_DIR / name
    with_savedmodel = "savedmodel" in plan.formats
    if not report.passed:
        kept = artifacts_root / f"rejected-{version}-{time.strftime('%Y%m%d-%H%M%S')}"
        if with_savedmodel:
            staged_savedmodel.rename(staged_artifacts / "savedmodel")
        repository.publish(staged_artifacts, kept)
        return ExportResult(
            plan.output,
            name,
            version,
            None,
            kept,
            _moved(files, staging, kept),
            report,
            published=False,
        )

    savedmodel_target = plan.output / name / str(version)
    artifacts_target = artifacts_root / str(version)
    config = repository.models_config_with(plan.output, name, plan.base_path)
    # Artifacts first, SavedModel last: when TF Serving sees the new version, its report exists.
    repository.publish(staged_artifacts, artifacts_target)
    if with_savedmodel:
        repository.publish(staged_savedmodel, savedmodel_target)
        repository.write_models_config(plan.output, config)
    files = {
        key: savedmodel_target
        if key == "savedmodel"
        else artifacts_target / path.relative_to(staged_artifacts)
        for key, path in files.items()
    }
    return ExportResult(
        plan.output,
        name,
        version,
        savedmodel_target if with_savedmodel else None,
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
