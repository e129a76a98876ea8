"""TFLite files (float32, float16, dynamic-range, full-integer int8) and a LiteRT runner for them.

Converted with ``tf.lite.TFLiteConverter.from_saved_model`` from the serving SavedModel's
``probabilities`` signature (``images`` float32 raw pixels -> ``probabilities``): the route
TensorFlow documents for Keras 3 (``from_keras_model`` relies on Keras 2 internals), and the same
graph TF Serving runs. Only TFLite builtin ops are allowed, so the
files run in ``ai_edge_litert`` without the Flex (SELECT_TF_OPS) delegate.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from export.options import TFLITE_MODES

# How many representative images int8 calibration uses by default (real images, batch 1).
DEFAULT_CALIBRATION_IMAGES = 200


def convert(
    saved_model_dir: str | Path,
    mode: str,
    representative_images: np.ndarray | None = None,
    signature: str = "probabilities",
) -> bytes:
    """Convert one signature of a SavedModel to a TFLite flatbuffer in ``mode``.

    Args:
        saved_model_dir: the exported SavedModel.
        mode: ``float32`` (no optimisation), ``float16`` (float16 weights), ``dynamic`` (int8
            weights, float activations quantised on the fly) or ``int8`` (all ops int8; uint8
            pixel input, float32 probabilities out).
        representative_images: uint8 ``(N, H, W, 3)`` real images; required for ``int8`` (the
            export plan makes sure there are some, :func:`export.options.plan_export`).
        signature: the signature mapping float32 pixels ``images`` to ``probabilities``.
    """
    if mode not in TFLITE_MODES:
        raise ValueError(f"unknown TFLite mode {mode!r}; expected one of {TFLITE_MODES}")
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model_dir), signature_keys=[signature]
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        if representative_images is None or len(representative_images) == 0:
            raise ValueError("int8 conversion needs representative images")
        images = np.asarray(representative_images, np.float32)

        def dataset() -> Iterator[list[np.ndarray]]:
            for image in images:
                yield [image[None]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # Pixels are bytes anyway: a uint8 input (scale 1, zero point 0) takes them unchanged.
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.float32
    return converter.convert()


def export_tflite(
    saved_model_dir: str | Path,
    output_dir: str | Path,
    modes: Sequence[str] = TFLITE_MODES,
    representative_images: np.ndarray | None = None,
    stem: str = "model",
) -> dict[str, Path]:
    """Write ``<stem>_<mode>.tflite`` for each of ``modes`` (see :func:`convert`) into
    ``output_dir``; returns mode -> path."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for mode in modes:
        path = output_dir / f"{stem}_{mode}.tflite"
        path.write_bytes(convert(saved_model_dir, mode, representative_images))
        paths[mode] = path
    return paths


class TFLiteRunner:
    """Probabilities from a ``.tflite`` file in the LiteRT interpreter (``ai_edge_litert``).

    Quantised inputs are fed through their own scale and zero point, so the same uint8 images go
    into every file. One interpreter per batch size, so timing a batch size never re-allocates.
    """

    def __init__(self, path: str | Path, num_threads: int | None = None) -> None:
        self.model_content = Path(path).read_bytes()
        # All cores, like TensorFlow and onnxruntime use by default, so latencies compare.
        self.num_threads = num_threads or os.cpu_count() or 1
        self._interpreters: dict[int, Interpreter] = {}

    def _interpreter(self, batch: int) -> Interpreter:
        if batch not in self._interpreters:
            interpreter = Interpreter(
                model_content=self.model_content, num_threads=self.num_threads
            )
            index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(index, [batch, *self.input_shape_of(interpreter)[1:]])
            interpreter.allocate_tensors()
            self._interpreters[batch] = interpreter
        return self._interpreters[batch]

    @staticmethod
    def input_shape_of(interpreter: Interpreter) -> list[int]:
        """The model's input shape (batch dimension as stored in the file)."""
        return list(interpreter.get_input_details()[0]["shape"])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for uint8 ``(N, H, W, 3)`` images."""
        interpreter = self._interpreter(len(images))
        inp = interpreter.get_input_details()[0]
        out = interpreter.get_output_details()[0]
        interpreter.set_tensor(inp["index"], _quantize(np.asarray(images), inp))
        interpreter.invoke()
        return _dequantize(interpreter.get_tensor(out["index"]), out)


def _quantize(images: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return images.astype(np.float32)
    scale, zero_point = detail["quantization"]
    if scale == 0:  # not quantised: integer input taken as is
        return images.astype(dtype)
    info = np.iinfo(dtype)
    q = np.round(images.astype(np.float32) / scale + zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def _dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    if np.dtype(detail["dtype"]) == np.float32:
        return values
    scale, zero_point = detail["quantization"]
    return (values.astype(np.float32) - zero_point) * scale
