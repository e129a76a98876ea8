"""ONNX file via tf2onnx, and an onnxruntime runner for it.

Converted from the serving SavedModel's ``probabilities`` signature (``images`` float32 raw pixels
-> ``probabilities``), the graph TF Serving runs and TFLite is made from, with tf2onnx's
SavedModel loader, at a pinned opset.

Why this route and not the others (all tried with Keras 3.15 / tf2onnx 1.17):

* ``tf2onnx.convert.from_keras`` reads Keras 2 internals: it needs ``model.output_names`` /
  ``_get_save_spec`` and fails on Keras 3 models loaded from ``.keras`` files (symbolic output
  names like ``keras_tensor_65`` are not in its rename map).
* ``model.export(format="onnx")`` and ``tf2onnx.convert.from_function`` treat tensors that the
  traced function captures by value (the mean/variance constants of the ``preprocess``
  Normalization layer) as extra graph *inputs*: onnxruntime then refuses to run with only the
  image fed. The output is also named ``output_0``.
* The other serving signatures decode images and look up label strings, which have no place in
  an ONNX graph for edge runtimes.

The SavedModel loader freezes captured constants into the graph and keeps the signature's input
and output names. tf2onnx's ``large_model`` mode is avoided: it calls ``np.product``, removed in
NumPy 2.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tf2onnx
from tf2onnx import tf_loader

from export.options import DEFAULT_OPSET

INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"


def export_onnx(
    saved_model_dir: str | Path,
    path: str | Path,
    opset: int = DEFAULT_OPSET,
    signature: str = "probabilities",
) -> Path:
    """Convert a SavedModel signature (float32 ``images`` -> ``probabilities``) to ONNX.

    The ONNX graph takes ``images`` float32 ``(N, H, W, 3)`` raw pixels and returns
    ``probabilities`` float32 ``(N, classes)``, with a dynamic batch dimension.
    """
    with _quiet_loggers("tensorflow", "tf2onnx"):
        return _convert(Path(saved_model_dir), Path(path), opset, signature)


def _convert(saved_model_dir: Path, path: Path, opset: int, signature: str) -> Path:
    graph_def, inputs, outputs, tensors_to_rename = tf_loader.from_saved_model(
        str(saved_model_dir),
        None,
        None,
        tag="serve",
        signatures=[signature],
        return_tensors_to_rename=True,
    )
    tf2onnx.convert.from_graph_def(
        graph_def,
        name="keras_preact",
        input_names=inputs,
        output_names=outputs,
        opset=opset,
        tensors_to_rename=tensors_to_rename,
        output_path=str(path),
    )
    return path


@contextmanager
def _quiet_loggers(*names: str):
    # tf2onnx's freezing goes through TF1-era APIs that log deprecation warnings at every call.
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class OnnxRunner:
    """Probabilities from an ONNX file in onnxruntime (CPU)."""

    def __init__(self, path: str | Path, num_threads: int | None = None) -> None:
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        names = [i.name for i in self.session.get_inputs()]
        if names != [INPUT_NAME]:
            raise ValueError(f"{path} has inputs {names}; expected [{INPUT_NAME!r}]")

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for uint8 ``(N, H, W, 3)`` images."""
        feed = {INPUT_NAME: np.asarray(images, np.float32)}
        return self.session.run([OUTPUT_NAME], feed)[0]
