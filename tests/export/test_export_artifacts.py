"""Every exported artifact loads in its own runtime and gives the Keras model's answers."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from ai_edge_litert.interpreter import Interpreter

from export.openvino_export import availability
from export.verify import ACCURACY_MARGINS, FLOAT_TOLERANCE, format_table

# The test environment installs OpenVINO and NNCF (the openvino extra); bfloat16 is made only on
# a CPU that runs it.
OPENVINO_ROWS = [
    "openvino:float32",
    *(["openvino:bfloat16"] if availability().bfloat16 else []),
    "openvino:int8",
]
EXPECTED_ROWS = [
    "keras",
    "savedmodel:serving_default",
    "savedmodel:serving_uint8",
    "savedmodel:serving_bytes",
    "tflite:float32",
    "tflite:float16",
    "tflite:dynamic",
    "tflite:int8",
    "onnx",
    "onnx:int8",
    *OPENVINO_ROWS,
]


def test_export_publishes_every_format_and_passes_verification(exported):
    assert exported.published and exported.report.passed, exported.report.failures
    assert exported.version == 1
    assert exported.savedmodel == exported.repository / exported.name / "1"
    assert (exported.savedmodel / "saved_model.pb").is_file()
    assert [row.name for row in exported.report.rows] == EXPECTED_ROWS
    keys = ("tflite:float32", "tflite:float16", "tflite:dynamic", "tflite:int8", "onnx")
    for key in (*keys, "onnx:int8", *OPENVINO_ROWS):
        assert exported.files[key].is_file() and exported.files[key].stat().st_size > 10_000
    # Nothing left over from staging.
    assert not [p for p in exported.repository.iterdir() if p.name.startswith(".")]


def test_report_numbers_meet_the_stated_criteria(exported):
    rows = {row.name: row for row in exported.report.rows}
    keras_accuracy = rows["keras"].accuracy
    assert 0.0 <= keras_accuracy <= 1.0
    for name, row in rows.items():
        if name == "keras":
            continue
        assert set(row.latency_ms) == {"batch_1", "batch_32"}
        assert all(ms > 0 for ms in row.latency_ms.values())
        assert row.size_bytes > 0
        if row.check == "float":
            assert row.max_abs_diff <= FLOAT_TOLERANCE, name
            assert row.top1_agreement == 1.0, name
        else:
            loss_points = 100 * (keras_accuracy - row.accuracy)
            assert loss_points <= ACCURACY_MARGINS[row.check], name
    # Quantised files really are smaller than the float32 one.
    assert rows["tflite:int8"].size_bytes < 0.5 * rows["tflite:float32"].size_bytes
    assert rows["tflite:float16"].size_bytes < 0.6 * rows["tflite:float32"].size_bytes
    assert rows["onnx:int8"].size_bytes < 0.5 * rows["onnx"].size_bytes
    assert rows["openvino:int8"].size_bytes < 0.5 * rows["openvino:float32"].size_bytes
    # OpenVINO's own word on what each compiled model computes in.
    assert rows["openvino:float32"].precision == "float32"
    assert rows["openvino:int8"].precision.startswith("int8, other ops ")
    if "openvino:bfloat16" in rows:
        assert rows["openvino:bfloat16"].precision == "bfloat16"


def test_report_json_matches_the_report(exported):
    data = json.loads((exported.artifacts_dir / "report.json").read_text())
    assert data["passed"] is True and data["failures"] == []
    assert data["name"] == exported.name and data["version"] == 1
    assert data["num_images"] == 300 and data["accuracy_meaningful"] is True
    assert data["float_tolerance"] == FLOAT_TOLERANCE
    assert data["onnx_opset"] == 17
    assert data["onnx_modes"] == ["float32", "int8"] and data["skipped"] == []
    assert data["openvino_modes"] == ["float32", *(m.split(":")[1] for m in OPENVINO_ROWS[1:])]
    assert [a["name"] for a in data["artifacts"]] == EXPECTED_ROWS
    assert {a["name"]: a["precision"] for a in data["artifacts"]}["openvino:float32"] == "float32"
    table = format_table(exported.report)
    for name in EXPECTED_ROWS:
        assert name in table
    assert "every artifact met its criterion" in table


@pytest.mark.parametrize("mode", ["float32", "float16", "dynamic", "int8"])
def test_tflite_file_in_litert_interpreter(exported, sample, keras_probabilities, mode):
    interpreter = Interpreter(model_path=str(exported.files[f"tflite:{mode}"]))
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    assert list(inp["shape_signature"]) == [-1, 32, 32, 3]
    assert out["dtype"] == np.float32
    images = sample.x_test[:100]
    if mode == "int8":
        # Full-integer file: takes the raw uint8 pixels unchanged (scale 1, zero point 0).
        assert inp["dtype"] == np.uint8 and inp["quantization"] == (1.0, 0)
        feed = images
    else:
        assert inp["dtype"] == np.float32
        feed = images.astype(np.float32)
    interpreter.resize_tensor_input(inp["index"], list(feed.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], feed)
    interpreter.invoke()
    probs = interpreter.get_tensor(out["index"])
    ref = keras_probabilities[:100]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=2e-2 if mode == "int8" else 1e-5)
    if mode == "float32":
        assert np.max(np.abs(probs - ref)) <= FLOAT_TOLERANCE
    else:
        accuracy = np.mean(probs.argmax(1) == sample.y_test[:100])
        keras_accuracy = np.mean(ref.argmax(1) == sample.y_test[:100])
        assert 100 * (keras_accuracy - accuracy) <= ACCURACY_MARGINS[mode] + 1.0  # 100 images
        assert np.max(np.abs(probs - ref)) > 0  # really quantised, not a float copy


def test_onnx_file_in_onnxruntime(exported, sample, keras_probabilities):
    path = exported.files["onnx"]
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert {o.domain: o.version for o in proto.opset_import}[""] == 17
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    [inp] = session.get_inputs()
    [out] = session.get_outputs()
    # One input only (no leaked constants), named as documented, dynamic batch.
    assert (inp.name, inp.type, inp.shape[1:]) == ("images", "tensor(float)", [32, 32, 3])
    assert isinstance(inp.shape[0], str)
    assert (out.name, out.shape[1]) == ("probabilities", 10)
    for batch in (1, 7, 300):
        probs = session.run(None, {"images": sample.x_test[:batch].astype(np.float32)})[0]
        assert np.max(np.abs(probs - keras_probabilities[:batch])) <= FLOAT_TOLERANCE
