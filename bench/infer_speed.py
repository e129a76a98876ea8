"""CPU inference: batch-1 latency and batch-32 images/s of every format, and the PyTorch peer.

Every runner has the same contract as keras-preact's exported artifacts: uint8 NHWC raw pixels in,
probabilities out (the PyTorch module wraps the network with the NHWC->NCHW transpose and a softmax,
so its eager and ONNX forms do the same work as the Keras ones). Three processes measure:

* ``keras``: the Keras model (``predict_on_batch``), then ``export.pipeline.export_model`` writes the
  SavedModel, every TFLite variant and the ONNX file, measured through ``export``'s own runners
  (``SavedModelRunner``, ``TFLiteRunner`` in LiteRT);
* ``pytorch``: eager PyTorch, and ``torch.onnx.export`` of the same module;
* ``onnxruntime``: both ONNX files in ``export.onnx_export.OnnxRunner`` with the same session
  options (intra-op threads = the cores), in the same process, taking turns in blocks of calls
  (`bench.timing.time_rounds`) so that the ratio the target asks for is a paired one.

Accuracy on the test images is recorded for each format when the model is a trained one (the
accuracy stage's seed 0); random-weight models are timed only.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.datasets import Images
from bench.timing import time_rounds
from keras_preact.cli import UserError

Runner = Callable[[np.ndarray], np.ndarray]
ONNX_OPSET = 17  # export.options.DEFAULT_OPSET, repeated so the PyTorch process does not import it
TFLITE_IMPLS = {
    "tflite:float32": "tflite-float32",
    "tflite:float16": "tflite-float16",
    "tflite:dynamic": "tflite-dynamic",
    "tflite:int8": "tflite-int8",
}


@dataclasses.dataclass(frozen=True)
class InferSettings:
    """Calls per measurement: ``warmup`` untimed, then ``repeats`` timed (batch 1 and batch 32)."""

    warmup: int = 20
    repeats: int = 200
    repeats_b32: int = 30
    rounds: int = 10  # runners compared with each other take turns, repeats / rounds calls a turn
    settle: int = 5  # untimed calls at the start of a turn (batch 32: one)
    threads: int = len(os.sched_getaffinity(0))
    calibration_images: int = 200
    verify_images: int = 300  # export.pipeline's own check of every artifact against Keras


@dataclasses.dataclass
class InferResult:
    """One runtime's numbers: median batch-1 ms, batch-32 images/s, test accuracy (or None)."""

    impl: str
    lat1_ms: float
    img_s_b32: float
    acc: float | None
    details: dict[str, Any]


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
    """Where each side leaves its ONNX file for the onnxruntime process."""
    return workdir / f"{impl}-{model}.onnx"


def keras_side(
    model: str, images: Images, s: InferSettings, workdir: Path, trained: Path | None
) -> list[InferResult]:
    """The Keras model, then the exported SavedModel and TFLite files (ONNX is left for later)."""
    import keras_preact
    from export.pipeline import export_model
    from export.savedmodel import SavedModelRunner
    from export.tflite import TFLiteRunner

    path = trained
    if path is None:
        path = workdir / f"random-{model}.keras"
        keras_preact.get_model(model, preprocessing="cifar10").save(path)
    net = keras_preact.load_model(path)
    results = [
        measure(
            "keras-preact",
            lambda x: np.asarray(net.predict_on_batch(x.astype(np.float32))),
            images,
            s,
            trained is not None,
            call="model.predict_on_batch",
        )
    ]
    out = workdir / f"export-{model}"
    shutil.rmtree(out, ignore_errors=True)
    exported = export_model(
        path,
        out,
        representative_data=images.x_train[: s.calibration_images],
        num_images=s.verify_images,
        latency_runs=0,
        log=lambda message: None,
    )
    files = exported.files
    is_trained, verified = trained is not None, exported.report.passed
    runner = SavedModelRunner(files["savedmodel"])
    results.append(measure("savedmodel", runner, images, s, is_trained, export_verified=verified))
    for key, impl in TFLITE_IMPLS.items():
        runner = TFLiteRunner(files[key], num_threads=s.threads)
        results.append(measure(impl, runner, images, s, is_trained, export_verified=verified))
    shutil.copyfile(files["onnx"], onnx_path(workdir, "onnx", model))
    return results


def pytorch_side(
    model: str, images: Images, s: InferSettings, workdir: Path, trained: Path | None
) -> list[InferResult]:
    """Eager PyTorch, then ``torch.onnx.export`` of the same module (measured by onnxruntime)."""
    import torch

    from bench.architectures import CIFAR10_MEAN, CIFAR10_STD
    from bench.torch_resnet import ServingModule, build_torch_resnet

    net = build_torch_resnet(model, CIFAR10_MEAN, CIFAR10_STD)
    if trained is not None:
        net.load_state_dict(torch.load(trained, weights_only=True))
    serving = ServingModule(net).eval()

    @torch.inference_mode()
    def eager(x: np.ndarray) -> np.ndarray:
        return serving(torch.from_numpy(x.astype(np.float32))).numpy()

    result = measure("pytorch", eager, images, s, trained is not None, call="eager, inference_mode")
    # The TorchScript exporter: the torch.export-based default needs onnxscript, which is not a
    # dependency; it writes the same opset as the project's tf2onnx export.
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        # Option-A shortcuts slice with step 2, which the exporter notes it cannot constant-fold.
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        torch.onnx.export(
            serving,
            (torch.zeros(1, 32, 32, 3),),
            str(onnx_path(workdir, "pytorch-onnx", model)),
            input_names=["images"],
            output_names=["probabilities"],
            dynamic_axes={"images": {0: "batch"}, "probabilities": {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return [result]


def onnxruntime_side(
    model: str, images: Images, s: InferSettings, workdir: Path, trained: bool
) -> list[InferResult]:
    """Both ONNX files in onnxruntime with identical session options."""
    from export.onnx_export import OnnxRunner

    runners, details = {}, {}
    for impl in ("onnx", "pytorch-onnx"):
        path = onnx_path(workdir, impl, model)
        if not path.is_file():
            raise UserError(f"{path} is missing: the keras and pytorch inference runs write it")
        runners[impl] = OnnxRunner(path, num_threads=s.threads)
        details[impl] = {"file": path.name}
    # The target compares these two: they take turns so that drift cannot favour either.
    return measure_interleaved(runners, images, s, trained, details)
