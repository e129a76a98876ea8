"""The TF Serving client (request builders, REST and gRPC) against the local stand-in server."""

from __future__ import annotations

import base64
import json
import socket
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from export import client
from export.images import encode_images
from export.local_server import LocalServer
from export.verify import FLOAT_TOLERANCE
from keras_preact.command_line import UserError
from keras_preact.datasets import CIFAR10_LABELS


@pytest.fixture(scope="module")
def server(exported):
    with LocalServer(exported.repository) as running:
        yield running


def expected_top5(keras_probabilities, n):
    ids = np.argsort(-keras_probabilities[:n], axis=1)[:, :5]
    return [[CIFAR10_LABELS[i] for i in row] for row in ids]


# --- request builders --------------------------------------------------------------------------


def test_rest_body_with_b64_bytes(sample):
    files = encode_images(sample.x_test[:3], "png")
    body = client.rest_predict_body(image_bytes=files)
    assert body["signature_name"] == "serving_bytes"
    assert [base64.b64decode(i["b64"]) for i in body["instances"]] == files
    columnar = client.rest_predict_body(image_bytes=files, columnar=True)
    assert list(columnar["inputs"]) == ["image_bytes"] and "instances" not in columnar
    json.dumps(body)  # serialisable as is


def test_rest_body_with_raw_pixels(sample):
    body = client.rest_predict_body(images=sample.x_test[:2])
    assert "signature_name" not in body  # the server's serving_default
    assert np.array_equal(np.array(body["instances"]), sample.x_test[:2])
    assert client.rest_url("localhost:8501", "m") == "http://localhost:8501/v1/models/m:predict"
    assert client.rest_url("h:1", "m", 3) == "http://h:1/v1/models/m/versions/3:predict"
    with pytest.raises(ValueError):
        client.rest_predict_body()


def test_grpc_request_builders(sample):
    pixels = client.grpc_predict_request("resnet", images=sample.x_test[:4], version=2)
    assert pixels.model_spec.name == "resnet" and pixels.model_spec.version.value == 2
    assert pixels.model_spec.signature_name == "serving_uint8"
    proto = pixels.inputs["images"]
    assert proto.dtype == types_pb2.DT_UINT8
    assert [d.size for d in proto.tensor_shape.dim] == [4, 32, 32, 3]
    np.testing.assert_array_equal(tf.make_ndarray(proto), sample.x_test[:4])
    floats = client.grpc_predict_request("resnet", images=sample.x_test[:1].astype(np.float32))
    assert floats.model_spec.signature_name == "serving_default"
    assert floats.inputs["images"].dtype == types_pb2.DT_FLOAT
    assert not floats.model_spec.HasField("version")
    files = encode_images(sample.x_test[:2], "jpeg")
    encoded = client.grpc_predict_request("resnet", image_bytes=files)
    assert encoded.model_spec.signature_name == "serving_bytes"
    assert encoded.inputs["image_bytes"].dtype == types_pb2.DT_STRING
    assert list(encoded.inputs["image_bytes"].string_val) == files


# --- end to end against the local server -------------------------------------------------------


def test_rest_b64_end_to_end(server, exported, sample, keras_probabilities):
    files = encode_images(sample.x_test[:8], "png")
    answer = client.rest_predict(
        server.rest_address, exported.name, client.rest_predict_body(image_bytes=files)
    )
    assert len(answer["predictions"]) == 8
    probs = np.array([p["probabilities"] for p in answer["predictions"]])
    assert np.max(np.abs(probs - keras_probabilities[:8])) <= FLOAT_TOLERANCE
    labels = [[label for label, _ in top] for top in client.labels_from_rest(answer)]
    assert labels == expected_top5(keras_probabilities, 8)


def test_rest_raw_pixels_columnar_and_versions(server, exported, sample, keras_probabilities):
    body = client.rest_predict_body(images=sample.x_test[:4], columnar=True)
    answer = client.rest_predict(server.rest_address, exported.name, body, version=1)
    probs = np.array(answer["outputs"]["probabilities"])
    assert np.max(np.abs(probs - keras_probabilities[:4])) <= FLOAT_TOLERANCE
    assert [[x for x, _ in t] for t in client.labels_from_rest(answer)] == expected_top5(
        keras_probabilities, 4
    )
    uint8 = client.rest_predict_body(images=sample.x_test[:2], signature_name="serving_uint8")
    answer = client.rest_predict(server.rest_address, exported.name, uint8)
    assert np.argmax(answer["predictions"][0]["probabilities"]) == np.argmax(keras_probabilities[0])
    status_url = f"http://{server.rest_address}/v1/models/{exported.name}"
    with urllib.request.urlopen(status_url) as response:
        status = json.loads(response.read())
    assert status["model_version_status"][0]["state"] == "AVAILABLE"


def test_grpc_end_to_end(server, exported, sample, keras_probabilities):
    for request in (
        client.grpc_predict_request(exported.name, images=sample.x_test[:4]),
        client.grpc_predict_request(exported.name, image_bytes=encode_images(sample.x_test[:4])),
    ):
        response = client.grpc_predict(server.grpc_address, request)
        probs = tf.make_ndarray(response.outputs["probabilities"])
        assert np.max(np.abs(probs - keras_probabilities[:4])) <= FLOAT_TOLERANCE
        labels = [[x for x, _ in t] for t in client.labels_from_grpc(response)]
        assert labels == expected_top5(keras_probabilities, 4)
        assert response.model_spec.version.value == 1


@pytest.mark.parametrize(
    "body, status, message",
    [
        (
            {"instances": np.zeros((1, 16, 16, 3)).tolist()},
            400,
            "Shape of tensor images [1,16,16,3] is not compatible with expected shape [?,32,32,3]",
        ),
        (
            {"instances": np.zeros((1, 32, 32)).tolist()},
            400,
            "Shape of tensor images [1,32,32] is not compatible with expected shape [?,32,32,3]",
        ),
        ({"instances": [[["a"] * 3] * 32] * 32}, 400, "must hold numbers"),
        ({"instances": [[[[1, 2, 3]] * 32] * 31 + [[[1, 2]] * 32]]}, 400, "rectangular"),
        (
            {"signature_name": "serving_uint8", "instances": np.full((1, 32, 32, 3), 300).tolist()},
            400,
            "values must be in [0, 255]",
        ),
        (
            {"signature_name": "serving_bytes", "instances": [{"b64": "bm90IGFuIGltYWdl"}]},
            400,
            "Unknown image file format",
        ),
        ({"signature_name": "serving_bytes", "instances": [{"b64": "!!"}]}, 400, "base64"),
        ({"signature_name": "nope", "instances": [1]}, 400, 'signature name: "nope" not found'),
        ({"instances": [1], "inputs": [1]}, 400, "exactly one of"),
    ],
)
def test_bad_requests_get_a_clear_error_and_the_server_keeps_serving(
    server, exported, sample, body, status, message
):
    url = client.rest_url(server.rest_address, exported.name)
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request)
    assert info.value.code == status
    error = json.loads(info.value.read())["error"]
    assert message in error and "Detected at node" not in error and "\n" not in error, error
    # Still serving.
    ok = client.rest_predict(
        server.rest_address,
        exported.name,
        client.rest_predict_body(image_bytes=encode_images(sample.x_test[:1])),
    )
    assert len(ok["predictions"]) == 1


def test_grpc_wrong_dtype_and_unknown_model(server, exported, sample):
    request = client.grpc_predict_request(
        exported.name, images=sample.x_test[:1].astype(np.float32), signature_name="serving_uint8"
    )
    with pytest.raises(UserError, match="INVALID_ARGUMENT: input 'images': expects uint8"):
        client.grpc_predict(server.grpc_address, request)
    unknown = client.grpc_predict_request("nobody", images=sample.x_test[:1])
    with pytest.raises(UserError, match="NOT_FOUND"):
        client.grpc_predict(server.grpc_address, unknown)
    with pytest.raises(UserError, match="answered HTTP 404: Servable not found"):
        client.rest_predict(server.rest_address, "nobody", {"instances": [1]})


def test_client_cli_rest_grpc_and_pixels(
    server, exported, sample, keras_probabilities, tmp_path, capsys
):
    paths = []
    for i, data in enumerate(encode_images(sample.x_test[:2], "png")):
        paths.append(tmp_path / f"image{i}.png")
        paths[-1].write_bytes(data)
    top1 = [expected_top5(keras_probabilities, 2)[i][0] for i in range(2)]
    for extra in (
        ["--server", server.rest_address],
        ["--server", server.rest_address, "--send", "pixels"],
        ["--server", server.grpc_address, "--protocol", "grpc"],
        ["--server", server.grpc_address, "--protocol", "grpc", "--send", "pixels"],
    ):
        assert client.main([*map(str, paths), "--model", exported.name, *extra]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert [line.split(": ")[0] for line in lines] == ["image0.png", "image1.png"]
        assert [line.split(": ")[1].split(" (")[0] for line in lines] == top1, extra


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.png"], "image file not found: missing.png"),
        (["{tmp}/broken.png", "--send", "pixels"], "cannot decode image broken.png"),
        (["{tmp}/broken.png"], "answered HTTP 400"),
        (["{tmp}/ok.png", "--server", "127.0.0.1:9"], "cannot reach TF Serving"),
        (["{tmp}/ok.png", "--protocol", "carrier-pigeon"], "invalid choice: 'carrier-pigeon'"),
        (["{tmp}/ok.png", "--resize", "center-crop"], "--resize applies to --send pixels"),
    ],
)
def test_client_cli_bad_input(server, exported, sample, tmp_path, capsys, args, message):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "ok.png").write_bytes(encode_images(sample.x_test[:1])[0])
    argv = [a.format(tmp=tmp_path) for a in args] + ["--model", exported.name]
    if "--server" not in argv:
        argv += ["--server", server.rest_address]
    with pytest.raises(SystemExit) as info:
        client.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert "{{" not in err and "[Op:" not in err, err  # the op's message, not its graph location


def test_client_names_a_server_that_hangs_up_or_does_not_answer_json():
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            if "garbage" in self.path:
                self.send_response(200)
                self.send_header("Content-Length", "5")
                self.end_headers()
                self.wfile.write(b"hello")
            else:  # hangs up without an answer
                self.close_connection = True

        def log_message(self, *args):
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        address = f"127.0.0.1:{httpd.server_address[1]}"
        try:
            with pytest.raises(UserError, match="answered with something that is not JSON"):
                client.rest_predict(address, "garbage", {"instances": [1]})
            with pytest.raises(UserError, match="no answer from TF Serving at http://127"):
                client.rest_predict(address, "hangup", {"instances": [1]})
        finally:
            httpd.shutdown()
            thread.join()
    with pytest.raises(UserError, match="unexpected answer from the server"):
        client.labels_from_rest({"predictions": [[0.1, 0.9]]})


def test_local_server_on_a_port_in_use_is_a_user_error(exported):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"cannot serve REST on 127.0.0.1:{port}: "):
            LocalServer(exported.repository, rest_port=port)
        with pytest.raises(UserError, match=f"cannot serve gRPC on 127.0.0.1:{port}: "):
            LocalServer(exported.repository, grpc_port=port)
