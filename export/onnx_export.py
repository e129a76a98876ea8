"""ONNX file via tf2onnx, its int8 form (onnxruntime static quantisation), and an onnxruntime
runner for them.

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

After conversion, :func:`simplify_graph` rewrites two patterns that tf2onnx leaves in a Keras
graph and that runtimes which pick their own memory layout (OpenVINO) run slower than the
equivalent ops of a PyTorch export; both rewrites compute exactly the same numbers:

* the input normalisation (``Sub``/``Mul`` by per-channel constants) runs before the one
  NHWC -> NCHW ``Transpose`` tf2onnx keeps at the input: it is moved behind the transpose, so the
  per-channel arithmetic runs on planar channels and fuses with the first convolution's input
  reorder, as in PyTorch's graph;
* the ImageNet stem's stride-1 3x3 max-pool followed by a 1x1 stride-2 max-pool (how
  keras-preact gets the references' symmetric one-pixel padding from Keras' 'same' pooling)
  becomes one 3x3 stride-2 max-pool with that padding: a quarter of the pooling work.
"""

from __future__ import annotations

import logging
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import tf2onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process
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
    model = onnx.load(str(path))
    if simplify_graph(model):
        onnx.save(model, str(path))
    return path


NCHW = [0, 3, 1, 2]


def simplify_graph(model: onnx.ModelProto) -> list[str]:
    """Rewrite ``model`` in place as the module docstring describes; returns what it changed
    (empty when neither pattern is there)."""
    graph = model.graph
    done = []
    if _normalise_after_transpose(graph):
        done.append("normalisation moved behind the input transpose")
    merged = _merge_strided_pools(graph)
    if merged:
        done.append(f"{merged} stride-1 max-pool(s) + 1x1 subsampling merged")
    return done


def _consumers(graph: onnx.GraphProto, name: str) -> list[onnx.NodeProto]:
    return [n for n in graph.node if name in n.input]


def _initializer(graph: onnx.GraphProto, name: str) -> onnx.TensorProto | None:
    return next((t for t in graph.initializer if t.name == name), None)


def _normalise_after_transpose(graph: onnx.GraphProto) -> bool:
    """input -> Sub/Mul/Div/Add by per-channel constants -> Transpose(NCHW) becomes input ->
    Transpose(NCHW) -> the same ops by (1, C, 1, 1)-constants."""
    if len(graph.input) != 1:
        return False
    chain: list[onnx.NodeProto] = []
    name = graph.input[0].name
    while True:
        users = _consumers(graph, name)
        if len(users) != 1:
            return False
        node = users[0]
        if node.op_type == "Transpose":
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            if perm != NCHW or not chain:
                return False
            transpose = node
            break
        if node.op_type not in ("Sub", "Mul", "Div", "Add") or node.input[0] != name:
            return False
        constant = _initializer(graph, node.input[1])
        if constant is None or len(_consumers(graph, constant.name)) != 1:
            return False
        # Per-channel on the last axis: (C,) or (1, 1, 1, C), or one number.
        shape = numpy_helper.to_array(constant).shape
        if len(shape) not in (0, 1, 4) or (len(shape) == 4 and shape[:3] != (1, 1, 1)):
            return False
        chain.append(node)
        name = node.output[0]
    source, transposed = graph.input[0].name, transpose.output[0]
    first = chain[0]
    # The transpose now reads the input, the first op reads the transpose, the last op's
    # output takes the transpose's old name (so its consumers are unchanged).
    inner = transposed + "__nhwc_input"
    transpose.input[0] = source
    transpose.output[0] = inner
    first.input[0] = inner
    chain[-1].output[0] = transposed
    for node in chain:
        constant = _initializer(graph, node.input[1])
        array = numpy_helper.to_array(constant)
        array = array.reshape(1, -1, 1, 1) if array.ndim else array
        constant.CopyFrom(numpy_helper.from_array(array, constant.name))
    nodes = list(graph.node)
    for node in (transpose, *chain):
        nodes.remove(node)
    at = min(i for i, n in enumerate(graph.node) if n in (transpose, *chain))
    nodes[at:at] = [transpose, *chain]
    del graph.node[:]
    graph.node.extend(nodes)
    return True


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _merge_strided_pools(graph: onnx.GraphProto) -> int:
    """MaxPool(k, stride 1, pads p) -> MaxPool(1x1, stride s, no pads) becomes MaxPool(k,
    stride s, pads p): sampling a stride-1 pool at every s-th pixel is the strided pool."""
    merged = 0
    for pool in list(graph.node):
        if pool.op_type != "MaxPool" or len(pool.output) != 1:
            continue
        a = _attrs(pool)
        if list(a.get("strides", [1, 1])) != [1, 1] or a.get("auto_pad", b"NOTSET") != b"NOTSET":
            continue
        if a.get("ceil_mode", 0) or list(a.get("dilations", [1, 1])) != [1, 1]:
            continue
        users = _consumers(graph, pool.output[0])
        if len(users) != 1 or users[0].op_type != "MaxPool":
            continue
        sub = users[0]
        b = _attrs(sub)
        if list(b["kernel_shape"]) != [1, 1] or any(b.get("pads", [0, 0, 0, 0])):
            continue
        if b.get("auto_pad", b"NOTSET") != b"NOTSET" or b.get("ceil_mode", 0):
            continue
        new = helper.make_node(
            "MaxPool",
            [pool.input[0]],
            [sub.output[0]],
            name=sub.name,
            kernel_shape=list(a["kernel_shape"]),
            strides=list(b.get("strides", [1, 1])),
            pads=list(a.get("pads", [0, 0, 0, 0])),
        )
        nodes = list(graph.node)
        at = nodes.index(pool)
        nodes[at] = new
        nodes.remove(sub)
        del graph.node[:]
        graph.node.extend(nodes)
        merged += 1
    return merged


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


def quantize_onnx(float_path: str | Path, path: str | Path, calibration: np.ndarray) -> Path:
    """onnxruntime's static int8 quantisation of the float ONNX file, calibrated on uint8
    ``(N, H, W, 3)`` real images (one at a time, every one of them, min/max ranges).

    QDQ format with per-channel int8 weights and uint8 activations, the combination onnxruntime
    recommends for x86 CPUs; the input stays float32 raw pixels and the output probabilities.
    The float graph first goes through onnxruntime's own preparation (``quant_pre_process``:
    shape inference and graph optimisation, batch norms folded), as its documentation asks.
    """
    images = iter(np.asarray(calibration, np.float32))

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            image = next(images, None)
            return None if image is None else {INPUT_NAME: image[None]}

    with tempfile.TemporaryDirectory(prefix="keras-preact-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(float_path), str(prepared))
        quantize_static(
            str(prepared),
            str(path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    return Path(path)


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
