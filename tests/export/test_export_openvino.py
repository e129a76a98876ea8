"""The OpenVINO IR and the int8 ONNX file in their own runtimes, the ONNX graph's rewrites, and the
export without OpenVINO."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnxruntime as ort
import openvino as ov
import pytest

import keras_preact
from export import openvino_export
from export.onnx_export import simplify_graph
from export.openvino_export import Availability, availability
from export.options import plan_export
from export.pipeline import export_model
from export.verify import ACCURACY_MARGINS, FLOAT_TOLERANCE
from keras_preact.command_line import UserError


def _accuracy_loss(probs, keras_probabilities, labels) -> float:
    ours = np.mean(probs.argmax(1) == labels)
    theirs = np.mean(keras_probabilities.argmax(1) == labels)
    return 100 * (theirs - ours)


def _compiled(path, hint: str | None = None, batch: int = 100):
    core = ov.Core()
    model = core.read_model(str(path))
    model.reshape([batch, 32, 32, 3])
    return core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint} if hint else {})


def test_openvino_ir_in_openvino_gives_keras_probabilities(exported, sample, keras_probabilities):
    xml = exported.files["openvino:float32"]
    assert xml.suffix == ".xml" and xml.with_suffix(".bin").is_file()
    compiled = _compiled(xml, "f32")
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) in ("<Type: 'float32'>", "f32")
    [inp] = compiled.inputs
    assert inp.get_any_name() == "images"
    probs = compiled(sample.x_test[:100].astype(np.float32))[0]
    assert np.max(np.abs(probs - keras_probabilities[:100])) <= FLOAT_TOLERANCE


@pytest.mark.skipif(not availability().bfloat16, reason="this CPU has no bfloat16 instructions")
def test_openvino_bfloat16_is_the_same_ir_at_lower_precision(exported, sample, keras_probabilities):
    # The bfloat16 row is the float32 IR compiled in bfloat16: close, not equal.
    assert exported.files["openvino:bfloat16"] == exported.files["openvino:float32"]
    probs = _compiled(exported.files["openvino:bfloat16"], "bf16")(
        sample.x_test[:100].astype(np.float32)
    )[0]
    ref = keras_probabilities[:100]
    assert 0 < np.max(np.abs(probs - ref)) < 0.1
    loss = _accuracy_loss(probs, ref, sample.y_test[:100])
    assert loss <= ACCURACY_MARGINS["bfloat16"] + 1.0  # 100 images


def test_openvino_int8_ir_is_quantised_and_keeps_the_accuracy(
    exported, sample, keras_probabilities
):
    xml = exported.files["openvino:int8"]
    ops = collections.Counter(op.get_type_name() for op in ov.Core().read_model(str(xml)).get_ops())
    assert ops["FakeQuantize"] >= 20  # every convolution's input and weights
    probs = _compiled(xml)(sample.x_test[:100].astype(np.float32))[0]
    ref = keras_probabilities[:100]
    assert np.max(np.abs(probs - ref)) > 0
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-3)
    assert _accuracy_loss(probs, ref, sample.y_test[:100]) <= ACCURACY_MARGINS["int8"] + 1.0


def test_onnx_int8_file_in_onnxruntime(exported, sample, keras_probabilities):
    path = exported.files["onnx:int8"]
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    ops = collections.Counter(n.op_type for n in proto.graph.node)
    assert ops["QuantizeLinear"] >= 20 and ops["DequantizeLinear"] >= 40
    weights = [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(weights) >= 21  # every convolution's and the dense layer's weights
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    [inp] = session.get_inputs()
    assert (inp.name, inp.type, inp.shape[1:]) == ("images", "tensor(float)", [32, 32, 3])
    probs = session.run(None, {"images": sample.x_test[:100].astype(np.float32)})[0]
    ref = keras_probabilities[:100]
    assert np.max(np.abs(probs - ref)) > 0
    assert _accuracy_loss(probs, ref, sample.y_test[:100]) <= ACCURACY_MARGINS["int8"] + 1.0


def test_the_onnx_graph_has_one_transpose_at_the_input(exported):
    graph = onnx.load(str(exported.files["onnx"])).graph
    transposes = [n for n in graph.node if n.op_type == "Transpose"]
    assert len(transposes) == 1
    # First, on the raw NHWC pixels; the normalisation follows it, on planar channels.
    assert graph.node[0].op_type == "Transpose" and graph.node[0].input[0] == "images"
    assert [n.op_type for n in graph.node[1:3]] == ["Sub", "Mul"]


def test_the_imagenet_stem_pool_becomes_one_strided_pool_with_the_same_numbers(tmp_path, sample):
    model = keras_preact.ResNet18V1(input_shape=(64, 64, 3), classes=10, preprocessing="imagenet")
    model.save(tmp_path / "r18.keras")
    result = export_model(
        tmp_path / "r18.keras",
        tmp_path / "repo",
        formats="onnx,openvino",
        quantize="",
        num_images=16,
        latency_runs=0,
        log=lambda message: None,
    )
    # Verification compared the rewritten ONNX file and the IR made from it with Keras.
    assert result.published, result.report.failures
    assert [r.name for r in result.report.rows] == ["keras", "onnx", "openvino:float32"]
    proto = onnx.load(str(result.files["onnx"]))
    pools = [n for n in proto.graph.node if n.op_type == "MaxPool"]
    assert len(pools) == 1
    attrs = {a.name: list(a.ints) for a in pools[0].attribute}
    assert attrs == {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    assert simplify_graph(proto) == []  # nothing left to rewrite
    # The sample's images doubled to 64x64: raw pixels in, as the model takes them.
    images = np.repeat(np.repeat(sample.x_test[:8], 2, axis=1), 2, axis=2).astype(np.float32)
    session = ort.InferenceSession(str(result.files["onnx"]), providers=["CPUExecutionProvider"])
    probs = session.run(None, {"images": images})[0]
    assert np.max(np.abs(probs - model.predict(images, verbose=0))) <= FLOAT_TOLERANCE


def test_without_openvino_the_default_skips_it_in_one_line_and_naming_it_fails(
    trained_model_path, tmp_path, monkeypatch
):
    monkeypatch.setattr(openvino_export, "availability", lambda: Availability(False, False, False))
    plan = plan_export(trained_model_path, tmp_path / "out")
    assert plan.formats == ("savedmodel", "tflite", "onnx") and plan.openvino_modes == ()
    assert plan.skipped == ('openvino (not installed: pip install "keras-preact[openvino]")',)
    assert plan.onnx_modes == ("float32", "int8")
    with pytest.raises(
        UserError, match=r"--formats openvino needs OpenVINO, which is not installed"
    ):
        plan_export(trained_model_path, tmp_path / "out", formats="onnx,openvino")
    # OpenVINO without NNCF, on a CPU without bfloat16: the float32 IR only, and why.
    monkeypatch.setattr(openvino_export, "availability", lambda: Availability(True, False, False))
    plan = plan_export(trained_model_path, tmp_path / "out", formats="openvino")
    assert plan.openvino_modes == ("float32",) and plan.needs_onnx and plan.onnx_opset is None
    assert plan.skipped == (
        "openvino bfloat16 (this CPU has no bfloat16 instructions)",
        'openvino int8 (NNCF is not installed: pip install "keras-preact[openvino]")',
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_export_says_what_it_skipped_and_publishes_the_rest(
    trained_model_path, tmp_path, monkeypatch
):
    monkeypatch.setattr(openvino_export, "availability", lambda: Availability(False, False, False))
    lines: list[str] = []
    result = export_model(
        trained_model_path,
        tmp_path / "repo",
        quantize="",
        num_images=8,
        latency_runs=0,
        log=lines.append,
    )
    assert result.published, result.report.failures
    assert lines[0] == 'skipped: openvino (not installed: pip install "keras-preact[openvino]")'
    assert not any("openvino" in r.name for r in result.report.rows)
    assert not (result.artifacts_dir / "openvino").exists()
