"""Hostile input to export, the local server and the client: models that are not classifiers,
damaged version folders, decompression bombs, gRPC tensors that lie about their size, impossible
ports and timeouts. Each gets one line (exit 2), an HTTP 4xx or INVALID_ARGUMENT / NOT_FOUND."""

from __future__ import annotations

import io
import json
import shutil
import struct
import urllib.request
import warnings
import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

import keras_preact
from export import client, local_server
from export.__main__ import main as export_main
from export.images import encode_images
from export.local_server import LocalServer
from export.onnx_export import OnnxRunner
from export.pipeline import export_model
from export.tflite import TFLiteRunner
from export.verify import format_table
from keras_preact import image_limits
from keras_preact.command_line import UserError


def run_main(main, argv, capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line(code: int, err: str, message: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def png_bomb(width: int, height: int, rows: int | None = None) -> bytes:
    """A real black RGB PNG of ``width`` x ``height`` (its rows compressed as they are made), or
    only its first ``rows`` rows' worth of data (a file the header alone describes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + 3 * width)
    parts = [compressor.compress(row) for _ in range(height if rows is None else rows)]
    data = b"".join(parts) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def server(exported):
    with LocalServer(exported.repository, max_request_bytes=64 << 20) as running:
        yield running


def post(server, path: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{server.rest_address}{path}", data=data)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def get(server, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://{server.rest_address}{path}", timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def grpc_error(server, request) -> str:
    with pytest.raises(UserError) as info:
        client.grpc_predict(server.grpc_address, request)
    return str(info.value)


# --- 5: models that are not classifiers --------------------------------------------------------


def save(model: keras.Model, path) -> str:
    model.save(path)
    return str(path)


def test_a_feature_extractor_is_refused_in_one_line(tmp_path, capsys):
    path = save(
        keras_preact.ResNet20V1(include_top=False, pooling="avg", preprocessing="cifar10"),
        tmp_path / "features.keras",
    )
    out_dir = tmp_path / "repo"
    code, out, err = run_main(
        export_main, ["--model", path, "--output", str(out_dir), "--latency-runs", "0"], capsys
    )
    one_line(code, err, "ends in its GlobalAveragePooling2D layer 'avg_pool': it is a feature")
    assert "include_top=True" in err and out == "" and not out_dir.exists()


def test_a_model_ending_in_another_activation_is_refused(tmp_path, capsys):
    path = save(
        keras_preact.ResNet20V1(classifier_activation="sigmoid", preprocessing="cifar10"),
        tmp_path / "sigmoid.keras",
    )
    code, _, err = run_main(
        export_main, ["--model", path, "--output", str(tmp_path / "repo")], capsys
    )
    one_line(code, err, "with activation 'sigmoid'; export serves softmax class probabilities")


@pytest.mark.slow
def test_a_logits_model_is_served_as_probabilities_with_a_note(tmp_path, sample):
    keras.utils.set_random_seed(1)
    model = keras_preact.ResNet20V1(classifier_activation=None, preprocessing="cifar10")
    # Logits large enough that serving them as they are could not pass for probabilities.
    dense = model.get_layer("logits")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 20, bias])
    path = save(model, tmp_path / "logits.keras")
    lines = []
    result = export_model(
        path,
        tmp_path / "repo",
        formats="savedmodel,tflite,onnx",
        quantize="",
        num_images=64,
        latency_runs=0,
        log=lines.append,
    )
    assert result.published
    assert any(line.startswith("note:") and "outputs logits" in line for line in lines), lines
    report = json.loads((result.artifacts_dir / "report.json").read_text())
    assert report["model_output"] == "logits"
    images = sample.x_test[:8]
    logits = model.predict(images.astype(np.float32), verbose=0)
    assert np.abs(logits).max() > 2  # really logits
    expected = tf.nn.softmax(logits).numpy()
    with LocalServer(tmp_path / "repo") as running:
        answer = client.rest_predict(
            running.rest_address,
            result.name,
            {"signature_name": "probabilities", "instances": images.astype(float).tolist()},
        )
    served = {
        "rest": np.asarray(answer["predictions"]),
        "onnx": OnnxRunner(result.files["onnx"])(images),
        "tflite": TFLiteRunner(result.files["tflite:float32"])(images),
    }
    for runtime, probabilities in served.items():
        assert probabilities.min() >= 0, runtime
        np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5, err_msg=runtime)
        np.testing.assert_allclose(probabilities, expected, atol=1e-4, err_msg=runtime)


# --- 6: gRPC ports and tensors -----------------------------------------------------------------


def test_a_grpc_port_another_server_holds_is_refused(exported):
    with LocalServer(exported.repository) as first:
        port = first.grpc_address.split(":")[1]
        with pytest.raises(UserError, match=f"cannot serve gRPC on 127.0.0.1:{port}"):
            LocalServer(exported.repository, grpc_port=int(port))


def float_tensor(shape, *, content: bytes = b"", values=()) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=n) for n in shape]
        ),
        tensor_content=content,
    )
    proto.float_val.extend(values)
    return proto


def predict_with(exported, proto, **spec):
    request = client.predict_request(exported.name, "serving_default", {})
    request.inputs["images"].CopyFrom(proto)
    for key, value in spec.items():
        setattr(request.model_spec, key, value)
    return request


@pytest.mark.parametrize(
    "proto, message",
    [
        (float_tensor([3000, 32, 32, 3]), "holds 0 values; its shape [3000, 32, 32, 3] needs"),
        (
            float_tensor([1 << 20, 1 << 20, 32, 3], values=[0.0]),
            "over this server's limit of 67108864 bytes",
        ),
        (float_tensor([2, 32, 32, 3], content=b"\0" * 100), "tensor_content holds 100 bytes"),
        (float_tensor([-1, 32, 32, 3]), "sizes cannot be negative"),
    ],
)
def test_grpc_tensors_that_lie_about_their_size_are_invalid(server, exported, proto, message):
    error = grpc_error(server, predict_with(exported, proto))
    assert "INVALID_ARGUMENT" in error and message in error, error


# --- 7: damaged version folders ----------------------------------------------------------------


@pytest.fixture(scope="module")
def damaged_repository(exported, tmp_path_factory):
    """Version 1 as exported, 2 empty, 3 with a truncated saved_model.pb."""
    root = tmp_path_factory.mktemp("damaged")
    shutil.copytree(exported.savedmodel, root / exported.name / "1")
    (root / exported.name / "2").mkdir()
    shutil.copytree(exported.savedmodel, root / exported.name / "3")
    graph = root / exported.name / "3" / "saved_model.pb"
    graph.write_bytes(graph.read_bytes()[:1000])
    return root


def test_damaged_versions_are_reported_failed_and_never_answer_500(
    damaged_repository, exported, sample
):
    name = exported.name
    body = {"instances": sample.x_test[:1].astype(float).tolist()}
    with LocalServer(damaged_repository) as running:
        code, status = get(running, f"/v1/models/{name}")
        assert code == 200
        states = {s["version"]: s for s in status["model_version_status"]}
        assert states["1"]["state"] == "AVAILABLE"
        for version in ("2", "3"):
            assert states[version]["state"] == "END", states
            assert "failed to load" in states[version]["status"]["error_message"]
        code, answer = post(running, f"/v1/models/{name}:predict", body)
        assert code == 200 and len(answer["predictions"]) == 1  # the newest that loads
        for version in (2, 3):
            code, answer = post(running, f"/v1/models/{name}/versions/{version}:predict", body)
            assert code == 404 and f"version {version} failed to load" in answer["error"], answer
        request = client.grpc_predict_request(name, images=sample.x_test[:1], version=3)
        assert "NOT_FOUND" in grpc_error(running, request)


# --- 8: decompression bombs --------------------------------------------------------------------


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A 9000 x 8000 PNG (72 million pixels, over the default limit) of about 0.2 MB."""
    return png_bomb(9000, 8000)


def test_header_sizes_of_every_format_match_the_decoded_image():
    from PIL import Image

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (37, 53, 3), np.uint8))
    for image_format, options in [
        ("PNG", {}),
        ("JPEG", {}),
        ("GIF", {}),
        ("BMP", {}),
        ("WEBP", {}),
        ("WEBP", {"lossless": True}),
    ]:
        buffer = io.BytesIO()
        image.save(buffer, image_format, **options)
        data = tf.constant(buffer.getvalue())
        decoded = tf.io.decode_image(data, channels=3, expand_animations=False)
        size = image_limits.header_size(data).numpy().tolist()
        assert size == [37, 53] == decoded.shape[:2], (image_format, options, size)
    for data in (b"", b"\x89PNG", b"not an image at all, but long enough for a header"):
        assert image_limits.header_size(tf.constant(data)).numpy().tolist() == [0, 0]


def test_the_pixel_limit_is_configurable_and_checked(monkeypatch):
    monkeypatch.delenv(image_limits.ENVIRONMENT_VARIABLE, raising=False)
    assert image_limits.max_pixels() == image_limits.DEFAULT_MAX_PIXELS == 8192 * 8192
    monkeypatch.setenv(image_limits.ENVIRONMENT_VARIABLE, "1_000_000")
    assert image_limits.max_pixels() == 1_000_000
    for bad in ("0", "-5", "lots", "1e6"):
        monkeypatch.setenv(image_limits.ENVIRONMENT_VARIABLE, bad)
        with pytest.raises(UserError, match="is not a positive number of pixels"):
            image_limits.max_pixels()


def test_serving_bytes_refuses_a_bomb_by_its_header(server, exported, bomb):
    message = "image of 9000 x 8000 pixels is over the limit of 67108864 decoded pixels"
    # The whole file, and its header alone: refused before anything is decoded.
    for data in (bomb, png_bomb(9000, 8000, rows=1)):
        code, answer = post(
            server,
            f"/v1/models/{exported.name}:predict",
            client.rest_predict_body(image_bytes=[data]),
        )
        assert code == 400 and answer["error"] == message, answer
    error = grpc_error(server, client.grpc_predict_request(exported.name, image_bytes=[bomb]))
    assert error.endswith(f"INVALID_ARGUMENT: {message}"), error


def test_export_takes_the_limit_and_refuses_a_bad_one(trained_model_path, tmp_path, capsys):
    code, _, err = run_main(
        export_main,
        ["--model", trained_model_path, "--output", str(tmp_path), "--max-image-pixels", "0"],
        capsys,
    )
    one_line(code, err, "--max-image-pixels must be a positive number of pixels, got 0")


def image_folder(root, sizes: dict[str, list[int]]):
    for label, sides in sizes.items():
        (root / "train" / label).mkdir(parents=True)
        for i, side in enumerate(sides):
            image = np.full((side, side, 3), 40 * i, np.uint8)
            (root / "train" / label / f"{i}.png").write_bytes(encode_images(image[None])[0])
    return root


def test_the_training_scan_refuses_or_skips_images_over_the_limit(tmp_path, monkeypatch):
    from training.data.images import folder as folders

    monkeypatch.setenv(image_limits.ENVIRONMENT_VARIABLE, "1000")
    root = image_folder(tmp_path, {"a": [20, 30], "b": [20, 40]})
    with pytest.raises(UserError) as info:
        folders.scan(root)
    message = str(info.value)
    assert "train/b/1.png: 40 x 40 pixels" in message and "over the limit of 1,000" in message
    assert "train/a" not in message  # 20 x 20 and 30 x 30 are within it
    lines = []
    found = folders.scan(root, skip_bad_images=True, log=lines.append)
    assert found.skipped == ("train/b/1.png",) and len(found.train) == 3
    assert any("40 x 40 pixels" in line for line in lines)
    evaluated = folders.scan_eval(root / "train", skip_bad_images=True)
    assert evaluated.skipped == ("b/1.png",)


# --- 10, 11: impossible ports and timeouts -----------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--rest-port", "99999"], "--rest-port must be a TCP port, 0..65535"),
        (
            ["--rest-port", "-1"],
            "--rest-port must be a TCP port, 0..65535 (0: any free one), got -1",
        ),
        (["--grpc-port", "70000"], "--grpc-port must be a TCP port"),
        (["--rest-port", "8601", "--grpc-port", "8601"], "both 8601; give two ports"),
        (["--max-request-mb", "4096"], "--max-request-mb must be 1..2047"),
    ],
)
def test_local_server_refuses_impossible_options(exported, args, message, capsys):
    code, _, err = run_main(local_server.main, [str(exported.repository), *args], capsys)
    one_line(code, err, message)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--timeout", "-5"], "--timeout must be a positive number of seconds, got -5"),
        (["--timeout", "0"], "--timeout must be a positive number of seconds, got 0"),
        (["--timeout", "nan"], "--timeout must be a positive number of seconds, got nan"),
        (["--version", "0"], "--version must be a positive integer, got 0"),
        (["--send", "pixels", "--image-size", "100000"], "--image-size must be 1..8192"),
    ],
)
def test_client_refuses_impossible_options(tmp_path, sample, args, message, capsys):
    image = tmp_path / "cat.png"
    image.write_bytes(encode_images(sample.x_test[:1])[0])
    argv = [str(image), "--model", "m", "--server", "127.0.0.1:9", *args]
    code, _, err = run_main(client.main, argv, capsys)
    one_line(code, err, message)


def test_client_refuses_a_bomb_before_decoding_it(tmp_path, capsys):
    image = tmp_path / "bomb.png"
    image.write_bytes(png_bomb(9000, 8000, rows=1))
    argv = [str(image), "--model", "m", "--server", "127.0.0.1:9", "--send", "pixels"]
    code, _, err = run_main(client.main, argv, capsys)
    one_line(code, err, "image bomb.png is 9000 x 8000 pixels, over the limit of 67108864")


# --- 13: what the verdict says, and pixels beyond float32 --------------------------------------


def test_the_verdict_says_what_each_criterion_checked(exported):
    verdict = format_table(exported.report).splitlines()[-1]
    assert "agree with Keras" not in verdict
    floats = sum(row.check == "float" for row in exported.report.rows)
    assert floats >= 5  # SavedModel's three signatures, TFLite float32, ONNX (and OpenVINO's IR)
    assert f"{floats} float artifacts checked for Keras' probabilities to within 1e-05" in verdict
    assert "quantised files judged by accuracy lost against Keras" in verdict, verdict
    int8 = next(row for row in exported.report.rows if row.name == "tflite:int8")
    assert "tflite:int8 " in verdict
    assert f"(top-1 agreement {100 * int8.top1_agreement:.1f} %)" in verdict, verdict


def test_pixels_beyond_float32_are_refused_without_a_numpy_warning(server, exported):
    pixels = np.zeros((1, 32, 32, 3)).tolist()
    pixels[0][0][0][0] = 1e39
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, answer = post(server, f"/v1/models/{exported.name}:predict", {"instances": pixels})
    assert code == 400 and "beyond float32's range" in answer["error"], answer
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], caught


# --- more hostile input of the same kinds ------------------------------------------------------


@pytest.mark.parametrize("signature", ["serving_default", "serving_uint8"])
def test_rest_booleans_are_not_pixels(server, exported, signature):
    pixels = np.zeros((1, 32, 32, 3), bool).tolist()
    body = {"signature_name": signature, "instances": pixels}
    code, answer = post(server, f"/v1/models/{exported.name}:predict", body)
    assert code == 400 and "must hold numbers" in answer["error"], answer


def test_grpc_version_labels_are_not_known_here(server, exported, sample):
    request = client.grpc_predict_request(exported.name, images=sample.x_test[:1])
    request.model_spec.version_label = "stable"
    error = grpc_error(server, request)
    assert "INVALID_ARGUMENT: Unrecognized servable version label: stable" in error, error


def test_grpc_inputs_are_checked_before_they_are_converted(server, exported, sample):
    # A wrong input name whose tensor claims to be huge: refused by its name, nothing allocated.
    request = predict_with(exported, float_tensor([1 << 30, 32, 32, 3], values=[1.0]))
    request.inputs["pixels"].CopyFrom(request.inputs["images"])
    del request.inputs["images"]
    error = grpc_error(server, request)
    assert "INVALID_ARGUMENT: signature 'serving_default' takes inputs ['images']" in error
    # Strings that one value would fill to a billion entries.
    request = client.grpc_predict_request(exported.name, image_bytes=[b"x"])
    request.inputs["image_bytes"].tensor_shape.dim[0].size = 10**12
    error = grpc_error(server, request)
    assert "INVALID_ARGUMENT" in error and "over this server's limit" in error, error
    # A dtype number that is no dtype, and a shape of unknown rank.
    request = client.grpc_predict_request(exported.name, images=sample.x_test[:1])
    request.inputs["images"].dtype = 999
    assert "INVALID_ARGUMENT: input 'images': expects uint8" in grpc_error(server, request)
    request = client.grpc_predict_request(exported.name, images=sample.x_test[:1])
    request.inputs["images"].tensor_shape.unknown_rank = True
    assert "INVALID_ARGUMENT: input 'images' has no shape" in grpc_error(server, request)


def test_client_names_a_closed_grpc_port(tmp_path, sample, capsys):
    image = tmp_path / "cat.png"
    image.write_bytes(encode_images(sample.x_test[:1])[0])
    argv = [str(image), "--model", "m", "--protocol", "grpc", "--server", "127.0.0.1:9"]
    code, _, err = run_main(client.main, argv, capsys)
    one_line(code, err, "cannot reach TF Serving's gRPC port at 127.0.0.1:9")


def test_a_model_with_no_version_that_loads_is_not_found(tmp_path, exported, sample):
    (tmp_path / exported.name / "4").mkdir(parents=True)
    with LocalServer(tmp_path) as running:
        code, status = get(running, f"/v1/models/{exported.name}")
        assert code == 200 and [s["state"] for s in status["model_version_status"]] == ["END"]
        body = {"instances": sample.x_test[:1].astype(float).tolist()}
        code, answer = post(running, f"/v1/models/{exported.name}:predict", body)
        assert code == 404 and "no version loads (version 4: " in answer["error"], answer


@pytest.mark.parametrize(
    "args, message",
    [
        (["--output", "{model}/inside"], "cannot create output directory"),
        (
            ["--labels", "{tmp}/two.txt"],
            "labels file {tmp}/two.txt has 2 names but the model has 10",
        ),
        (["--labels", "{tmp}"], "is neither cifar10 nor cifar100 nor an existing file"),
    ],
)
def test_export_output_and_labels_mistakes(trained_model_path, tmp_path, capsys, args, message):
    (tmp_path / "two.txt").write_text("cat\ndog\n")
    values = {"model": trained_model_path, "tmp": tmp_path}
    argv = ["--model", trained_model_path, "--output", str(tmp_path / "repo")]
    argv += [a.format(**values) for a in args] + ["--latency-runs", "0"]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = run_main(export_main, argv, capsys)
    one_line(code, err, message.format(**values))
    assert sorted(p.name for p in tmp_path.iterdir()) == before
