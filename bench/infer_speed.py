"""CPU inference: batch-1 latency and batch-32 images/s of every format, and the PyTorch peers.

Every runner has the same contract as keras-preact's exported artifacts: uint8 NHWC raw pixels in,
probabilities out (the PyTorch module wraps the network with the NHWC->NCHW transpose and a softmax,
so its eager, compiled and ONNX forms do the same work as the Keras ones). The CIFAR networks take
the test images at 32x32; the ImageNet networks (random weights, 1,000 classes, as served) take
them upscaled to ``image_size`` (224), and their int8 files calibrate on the training images
upscaled the same way. Four processes measure, one after the other:

* ``keras``: the Keras model (``predict_on_batch``), then ``export.pipeline.export_model`` writes
  and verifies the SavedModel, every TFLite variant, the ONNX files (float32 and int8) and the
  OpenVINO IR (float32, and int8 by NNCF) where OpenVINO is installed; SavedModel and TFLite are
  measured here through ``export``'s own runners, the rest left for the next processes;
* ``pytorch``: eager PyTorch, ``torch.compile`` of the same module (TorchInductor, default mode;
  its compile time recorded apart), and ``torch.onnx.export`` of it;
* ``onnxruntime``: keras-preact's two ONNX files and PyTorch's, float32 and int8 (onnxruntime's
  static quantisation of PyTorch's file, calibrated on the same images as keras-preact's), in
  ``export.onnx_export.OnnxRunner`` with the same session options (intra-op threads = the cores);
* ``openvino``: keras-preact's IR in float32, in bfloat16 (where the CPU has it: OpenVINO's default
  there) and its int8 IR, against PyTorch's ONNX file read by OpenVINO in the same precisions and
  NNCF's int8 of it, all in ``export.openvino_export.OpenVINORunner``; each record holds the
  precision OpenVINO reports the compiled model runs in.

The runners of one process take turns in blocks of calls (`bench.timing.time_rounds`), so that
the ratios of ours to the peers' are paired ones. Each record names its precision class
(`PRECISION_CLASSES`): the targets compare keras-preact's fastest verified artifact of a class
with the fastest peer of the same class. Accuracy on the test images is recorded for each format
when the model is a trained one (the accuracy stage's seed 0); random-weight models are timed only.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.architectures import get_architecture
from bench.datasets import Images, at_size
from bench.timing import time_rounds
from keras_preact.command_line import UserError

Runner = Callable[[np.ndarray], np.ndarray]
ONNX_OPSET = 17  # export.options.DEFAULT_OPSET, repeated so the PyTorch process does not import it
IMAGENET_CLASSES = 1000  # the ImageNet networks are timed as served
TFLITE_IMPLS = {
    "tflite:float32": "tflite-float32",
    "tflite:float16": "tflite-float16",
    "tflite:dynamic": "tflite-dynamic",
    "tflite:int8": "tflite-int8",
}
# What each contender computes in, and the class it competes in: keras-preact's fastest verified
# artifact of a class against the fastest peer of the same class. The OpenVINO records hold the
# precision OpenVINO reports instead of the one named here.
FLOAT32, HALF, INT8 = "float32", "bfloat16/float16", "int8"
PRECISIONS: dict[str, tuple[str, str]] = {
    "keras-preact": ("float32", FLOAT32),
    "savedmodel": ("float32", FLOAT32),
    "tflite-float32": ("float32", FLOAT32),
    "onnx": ("float32", FLOAT32),
    "openvino-float32": ("float32", FLOAT32),
    "tflite-float16": ("float16 weights, float32 compute", HALF),
    "openvino-bfloat16": ("bfloat16", HALF),
    "tflite-dynamic": ("int8 weights, int8 activations quantised per call", INT8),
    "tflite-int8": ("int8", INT8),
    "onnx-int8": ("int8 (QDQ), float32 input", INT8),
    "openvino-int8": ("int8", INT8),
    "pytorch": ("float32", FLOAT32),
    "pytorch-compile": ("float32", FLOAT32),
    "pytorch-onnx": ("float32", FLOAT32),
    "pytorch-openvino-float32": ("float32", FLOAT32),
    "pytorch-openvino-bfloat16": ("bfloat16", HALF),
    "pytorch-onnx-int8": ("int8 (QDQ), float32 input", INT8),
    "pytorch-openvino-int8": ("int8", INT8),
}
PRECISION_CLASSES = (FLOAT32, HALF, INT8)
# The export's verification rows of keras-preact's contenders.
EXPORT_ROWS = {
    "savedmodel": "savedmodel:serving_default",
    **{impl: row for row, impl in TFLITE_IMPLS.items()},
    "onnx": "onnx",
    "onnx-int8": "onnx:int8",
    "openvino-float32": "openvino:float32",
    "openvino-bfloat16": "openvino:bfloat16",
    "openvino-int8": "openvino:int8",
}


@dataclasses.dataclass(frozen=True)
class InferSettings:
    """Calls per measurement: ``warmup`` untimed, then ``repeats`` timed (batch 1 and batch 32);
    the ImageNet networks at ``image_size``, with fewer calls (`for_model`)."""

    warmup: int = 20
    repeats: int = 200
    repeats_b32: int = 30
    rounds: int = 10  # runners compared with each other take turns, repeats / rounds calls a turn
    settle: int = 5  # untimed calls at the start of a turn (batch 32: one)
    threads: int = len(os.sched_getaffinity(0))
    calibration_images: int = 200
    verify_images: int = 300  # export.pipeline's own check of every artifact against Keras
    image_size: int = 224  # of the ImageNet networks

    def for_model(self, model: str) -> InferSettings:
        """These settings for ``model``: an ImageNet network at 224x224 costs ~100 times a CIFAR
        one per call, so it gets a quarter of the calls in half the rounds, and its export
        calibrates on at most 100 images and verifies on at most 64."""
        if get_architecture(model).family != "imagenet":
            return self
        rounds = max(1, self.rounds // 2)
        return dataclasses.replace(
            self,
            warmup=math.ceil(self.warmup / 4),
            repeats=max(rounds, math.ceil(self.repeats / 4)),
            repeats_b32=max(rounds, math.ceil(self.repeats_b32 / 3)),
            rounds=rounds,
            settle=math.ceil(self.settle / 2),
            calibration_images=min(self.calibration_images, 100),
            verify_images=min(self.verify_images, 64),
        )


@dataclasses.dataclass
class InferResult:
    """One runtime's numbers: median batch-1 ms, batch-32 images/s, test accuracy (or None)."""

    impl: str
    lat1_ms: float
    img_s_b32: float
    acc: float | None
    details: dict[str, Any]


def model_images(model: str, images: Images, s: InferSettings) -> Images:
    """The images ``model`` is timed, verified and calibrated on: the CIFAR test images and the
    first training images (calibration) as they are, or upscaled to ``s.image_size`` for an
    ImageNet network (the 32 images a batch-32 call takes, and the calibration images)."""
    if get_architecture(model).family != "imagenet":
        return images
    size = (s.image_size, s.image_size)
    return images._replace(
        x_test=at_size(images.x_test[:32], size),
        y_test=images.y_test[:32],
        x_train=at_size(images.x_train[: s.calibration_images], size),
        y_train=images.y_train[: s.calibration_images],
    )


def _details(impl: str, **extra: Any) -> dict[str, Any]:
    precision, klass = PRECISIONS[impl]
    return {"precision": precision, "precision_class": klass, **extra}


def measure(impl: str, runner: Runner, images: Images, s: InferSettings, trained: bool, **details):
    """Time ``runner`` at batch 1 and 32 on real test images; accuracy if the model is trained."""
    (result,) = measure_interleaved({impl: runner}, images, s, trained, {impl: details})
    return result


def measure_interleaved(
    runners: dict[str, Runner],
    images: Images,
    s: InferSettings,
    trained: bool,
    details: dict[str, dict[str, Any]],
) -> list[InferResult]:
    """`measure` for several runners taking turns in ``s.rounds`` rounds (`time_rounds`).

    With more than one runner, each result's details hold its per-round medians
    (``rounds_lat1_ms``, ``rounds_img_s_b32``), aligned across the runners, for paired ratios.
    """
    x1, x32 = images.x_test[:1], images.x_test[:32]
    calls = list(runners.values())
    paired = len(calls) > 1
    rounds = s.rounds if paired else 1
    lat = time_rounds(
        [lambda r=r: r(x1) for r in calls],
        s.warmup,
        -(-s.repeats // rounds),
        rounds,
        s.settle if paired else 0,
    )
    b32 = time_rounds(
        [lambda r=r: r(x32) for r in calls],
        max(2, s.warmup // 4),
        -(-s.repeats_b32 // rounds),
        rounds,
        min(s.settle, 1) if paired else 0,
    )
    results = []
    for i, (impl, runner) in enumerate(runners.items()):
        lat_all = [t for block in lat[i] for t in block]
        b32_all = [t for block in b32[i] for t in block]
        extra: dict[str, Any] = {}
        if paired:
            extra = {
                "interleaved_with": [other for other in runners if other != impl],
                "rounds_lat1_ms": [float(np.median(b) * 1000) for b in lat[i]],
                "rounds_img_s_b32": [float(32 / np.median(b)) for b in b32[i]],
            }
        results.append(
            InferResult(
                impl,
                float(np.median(lat_all) * 1000),
                float(32 / np.median(b32_all)),
                _accuracy(runner, images) if trained else None,
                {
                    "lat1_p90_ms": float(np.percentile(lat_all, 90) * 1000),
                    "threads": s.threads,
                    **extra,
                    **details[impl],
                },
            )
        )
    return results


def _accuracy(runner: Runner, images: Images) -> float:
    probs = np.concatenate(
        [np.asarray(runner(images.x_test[i : i + 32])) for i in range(0, len(images.x_test), 32)]
    )
    return float((probs.argmax(1) == images.y_test).mean())


def onnx_path(workdir: Path, impl: str, model: str) -> Path:
    """Where each side leaves its ONNX file (or IR: ``.xml``) for the later processes."""
    suffix = ".xml" if impl.startswith("openvino") else ".onnx"
    return workdir / f"{impl}-{model}{suffix}"


def _verified_path(workdir: Path, model: str) -> Path:
    return workdir / f"verified-{model}.json"


def keras_model(model: str, s: InferSettings, workdir: Path) -> Path:
    """A random-weight keras-preact model of the benchmark's network, saved: a CIFAR network
    with CIFAR-10 normalisation inside, an ImageNet one at ``s.image_size`` with 1,000 classes."""
    import keras_preact

    arch = get_architecture(model)
    path = workdir / f"random-{model}.keras"
    if arch.family == "imagenet":
        size = (s.image_size, s.image_size, 3)
        net = getattr(keras_preact, arch.name)(
            input_shape=size,
            classes=IMAGENET_CLASSES,
            preprocessing="imagenet",
            **dict(arch.options),
        )
    else:
        net = keras_preact.get_model(model, preprocessing="cifar10")
    net.save(path)
    return path


def keras_side(
    model: str, images: Images, s: InferSettings, workdir: Path, trained: Path | None
) -> list[InferResult]:
    """The Keras model, then the exported SavedModel and TFLite files (ONNX and OpenVINO files
    are copied to ``workdir`` for the next processes, with the export's verdict on each)."""
    import keras_preact
    from export.pipeline import export_model
    from export.savedmodel import SavedModelRunner
    from export.tflite import TFLiteRunner

    s = s.for_model(model)
    images = model_images(model, images, s)
    path = trained or keras_model(model, s, workdir)
    net = keras_preact.load_model(path)
    is_trained = trained is not None
    results = [
        measure(
            "keras-preact",
            lambda x: np.asarray(net.predict_on_batch(x.astype(np.float32))),
            images,
            s,
            is_trained,
            **_details("keras-preact", call="model.predict_on_batch"),
        )
    ]
    out = workdir / f"export-{model}"
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    exported = export_model(
        path,
        out,
        representative_data=images.x_train[: s.calibration_images],
        num_images=s.verify_images,
        latency_runs=0,
        log=lambda message: None,
    )
    export_s = round(time.perf_counter() - started, 1)
    files = exported.files
    passed = {row.name: row.passed for row in exported.report.rows}
    verified = {impl: passed[row] for impl, row in EXPORT_ROWS.items() if row in passed}
    _verified_path(workdir, model).write_text(json.dumps(verified))
    runner = SavedModelRunner(files["savedmodel"])
    info = {"export_s": export_s, "skipped": list(exported.report.metadata.get("skipped", []))}
    results.append(
        measure(
            "savedmodel",
            runner,
            images,
            s,
            is_trained,
            **_details("savedmodel", export_verified=verified["savedmodel"], **info),
        )
    )
    for key, impl in TFLITE_IMPLS.items():
        runner = TFLiteRunner(files[key], num_threads=s.threads)
        details = _details(impl, export_verified=verified[impl])
        results.append(measure(impl, runner, images, s, is_trained, **details))
    shutil.copyfile(files["onnx"], onnx_path(workdir, "onnx", model))
    shutil.copyfile(files["onnx:int8"], onnx_path(workdir, "onnx-int8", model))
    for key in ("openvino:float32", "openvino:int8"):
        if key in files:
            target = onnx_path(workdir, key.replace(":", "-"), model)
            shutil.copyfile(files[key], target)
            shutil.copyfile(files[key].with_suffix(".bin"), target.with_suffix(".bin"))
    return results


def pytorch_side(
    model: str, images: Images, s: InferSettings, workdir: Path, trained: Path | None
) -> list[InferResult]:
    """Eager PyTorch, ``torch.compile`` of the same module, then ``torch.onnx.export`` of it
    (measured by onnxruntime and OpenVINO)."""
    import torch

    from bench.architectures import CIFAR10_MEAN, CIFAR10_STD
    from bench.torch_resnet import ServingModule, build_torch_resnet

    s = s.for_model(model)
    images = model_images(model, images, s)
    if get_architecture(model).family == "imagenet":
        from bench.torch_images import build_torchvision_resnet

        net = build_torchvision_resnet(model, IMAGENET_CLASSES)
    else:
        net = build_torch_resnet(model, CIFAR10_MEAN, CIFAR10_STD)
    if trained is not None:
        net.load_state_dict(torch.load(trained, weights_only=True))
    serving = ServingModule(net).eval()
    is_trained = trained is not None

    @torch.inference_mode()
    def eager(x: np.ndarray) -> np.ndarray:
        return serving(torch.from_numpy(x.astype(np.float32))).numpy()

    results = [
        measure("pytorch", eager, images, s, is_trained, **_details("pytorch", call="eager"))
    ]
    compiled_module = torch.compile(serving)  # TorchInductor, default mode

    @torch.no_grad()
    def compiled(x: np.ndarray) -> np.ndarray:
        return compiled_module(torch.from_numpy(x.astype(np.float32))).numpy()

    compile_s = {}
    for batch in (1, 32):  # each batch size compiles its own graph on its first call
        start = time.perf_counter()
        compiled(images.x_test[:batch])
        compile_s[f"batch_{batch}"] = round(time.perf_counter() - start, 2)
    details = _details(
        "pytorch-compile",
        call="torch.compile (inductor, default mode), no_grad",
        compile_s=compile_s,
    )
    results.append(measure("pytorch-compile", compiled, images, s, is_trained, **details))
    # The TorchScript exporter: the torch.export-based default needs onnxscript, which is not a
    # dependency; it writes the same opset as the project's tf2onnx export.
    size = images.x_test.shape[1:]
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        # Option-A shortcuts slice with step 2, which the exporter notes it cannot constant-fold.
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        warnings.filterwarnings("ignore", message="You are using the legacy", category=Warning)
        torch.onnx.export(
            serving,
            (torch.zeros(1, *size),),
            str(onnx_path(workdir, "pytorch-onnx", model)),
            input_names=["images"],
            output_names=["probabilities"],
            dynamic_axes={"images": {0: "batch"}, "probabilities": {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return results


def _ours(workdir: Path, model: str, impl: str) -> tuple[Path, dict[str, Any]]:
    """keras-preact's file of ``impl`` and the export's verdict on it."""
    path = onnx_path(workdir, impl, model)
    if not path.is_file():
        raise UserError(f"{path} is missing: the keras inference run writes it")
    verified = json.loads(_verified_path(workdir, model).read_text())
    return path, {"file": path.name, "export_verified": verified[impl]}


def _peer(workdir: Path, model: str) -> Path:
    path = onnx_path(workdir, "pytorch-onnx", model)
    if not path.is_file():
        raise UserError(f"{path} is missing: the pytorch inference run writes it")
    return path


def onnxruntime_side(
    model: str, images: Images, s: InferSettings, workdir: Path, trained: bool
) -> list[InferResult]:
    """keras-preact's and PyTorch's ONNX files, float32 and int8, in onnxruntime with identical
    session options, taking turns; PyTorch's int8 file is quantised here, calibrated on the same
    images as keras-preact's."""
    from export.onnx_export import OnnxRunner, quantize_onnx

    s = s.for_model(model)
    images = model_images(model, images, s)
    peer = _peer(workdir, model)
    peer_int8 = onnx_path(workdir, "pytorch-onnx-int8", model)
    quantize_onnx(peer, peer_int8, images.x_train[: s.calibration_images])
    runners, details = {}, {}
    for impl in ("onnx", "onnx-int8"):
        path, info = _ours(workdir, model, impl)
        runners[impl] = OnnxRunner(path, num_threads=s.threads)
        details[impl] = _details(impl, **info)
    for impl, path in (("pytorch-onnx", peer), ("pytorch-onnx-int8", peer_int8)):
        runners[impl] = OnnxRunner(path, num_threads=s.threads)
        details[impl] = _details(impl, file=path.name)
    # The targets compare these: they take turns so that drift cannot favour either.
    return measure_interleaved(runners, images, s, trained, details)


def openvino_side(
    model: str, images: Images, s: InferSettings, workdir: Path, trained: bool
) -> list[InferResult]:
    """keras-preact's OpenVINO IR against PyTorch's ONNX file in OpenVINO, in float32, bfloat16
    (where the CPU has it) and int8 (NNCF, the peer's quantised here on the same images)."""
    from export.openvino_export import OpenVINORunner, availability, quantize_openvino

    s = s.for_model(model)
    images = model_images(model, images, s)
    peer = _peer(workdir, model)
    peer_int8 = onnx_path(workdir, "openvino-pytorch-int8", model)
    quantize_openvino(peer, images.x_train[: s.calibration_images], peer_int8)
    found = availability()
    precisions = ("float32", "bfloat16") if found.bfloat16 else ("float32",)
    runners, details = {}, {}
    for precision in precisions:
        path, info = _ours(workdir, model, "openvino-float32")
        impl = f"openvino-{precision}"
        info["export_verified"] = json.loads(_verified_path(workdir, model).read_text()).get(impl)
        runners[impl] = OpenVINORunner(path, precision, num_threads=s.threads)
        peer_impl = f"pytorch-openvino-{precision}"
        runners[peer_impl] = OpenVINORunner(peer, precision, num_threads=s.threads)
        details[impl], details[peer_impl] = info, {"file": peer.name}
    path, info = _ours(workdir, model, "openvino-int8")
    runners["openvino-int8"] = OpenVINORunner(path, num_threads=s.threads)
    runners["pytorch-openvino-int8"] = OpenVINORunner(peer_int8, num_threads=s.threads)
    details["openvino-int8"], details["pytorch-openvino-int8"] = info, {"file": peer_int8.name}
    for impl, runner in runners.items():
        # What OpenVINO says the compiled model computes in, not what was asked for.
        details[impl] = {**_details(impl), **details[impl], "precision": runner.precision_run}
    return measure_interleaved(runners, images, s, trained, details)
