"""The local stand-in for TF Serving answers every malformed request with a 4xx and a JSON error,
over a real socket, and never drops a connection or hangs."""

from __future__ import annotations

import json
import socket
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from export import client
from export.local_server import LocalServer
from export.model import InferenceModel
from export.savedmodel import export_savedmodel
from keras_preact.command_line import UserError

LIMIT = 1 << 20
TIMEOUT = 1.0


@pytest.fixture(scope="module")
def server(exported):
    with LocalServer(exported.repository, max_request_bytes=LIMIT, request_timeout=TIMEOUT) as s:
        yield s


def exchange(server, data: bytes, half_close: bool = False) -> tuple[int, dict, dict, float]:
    """Send raw bytes, read one response: status, headers, JSON body, seconds it took."""
    host, port = server.rest_address.split(":")
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        reader = sock.makefile("rb")
        status_line = reader.readline().decode()
        assert status_line.startswith("HTTP/1.1 "), status_line  # an answer, not a dropped line
        headers = {}
        while (line := reader.readline().decode().strip()) != "":
            key, value = line.split(":", 1)
            headers[key.lower()] = value.strip()
        body = json.loads(reader.read(int(headers["content-length"])))
    return int(status_line.split()[1]), headers, body, time.monotonic() - start


def post(body: bytes, path: str = "/v1/models/{name}:predict", **headers: str) -> bytes:
    headers = {"Content-Length": str(len(body))} | {
        k.replace("_", "-"): v for k, v in headers.items()
    }
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items() if v is not None)
    return f"POST {path} HTTP/1.1\r\nHost: test\r\n{lines}\r\n".encode() + body


def predict(instances, **fields) -> bytes:
    return json.dumps({**fields, "instances": instances}).encode()


PIXELS = np.zeros((1, 32, 32, 3)).tolist()
CASES = {
    "signature name not a string": (
        post(predict([1], signature_name=["x"])),
        400,
        "'signature_name' must be a string",
    ),
    "JSON nested 100,000 deep": (post(b"[" * 100_000 + b"]" * 100_000), 400, "nested too deeply"),
    "instances nested 900 deep": (
        post(b'{"instances": ' + b"[" * 900 + b"1" + b"]" * 900 + b"}"),
        400,
        "nested too deeply",
    ),
    "Content-Length not a number": (post(b"{}", Content_Length="abc"), 400, "'abc'"),
    "Content-Length negative": (post(b"{}", Content_Length="-1"), 400, "'-1'"),
    "no Content-Length": (post(b"{}", Content_Length=None), 411, "needs a Content-Length"),
    "chunked body": (
        post(b"2\r\n{}\r\n0\r\n\r\n", Content_Length=None, Transfer_Encoding="chunked"),
        411,
        "not supported",
    ),
    "body over the limit": (
        post(b"[" * (LIMIT + 1)),
        413,
        f"request body of {LIMIT + 1} bytes is over this server's limit of {LIMIT} bytes",
    ),
    "not JSON": (post(b"images please"), 400, "JSON Parse error"),
    "not UTF-8": (post(b"\xff\xfe{}"), 400, "JSON Parse error"),
    "unknown model": (post(predict(PIXELS), "/v1/models/nobody:predict"), 404, "Latest(nobody)"),
    "model name ..": (post(predict(PIXELS), "/v1/models/..:predict"), 404, "Servable not found"),
    "unknown version": (
        post(predict(PIXELS), "/v1/models/{name}/versions/7:predict"),
        404,
        "Specific(resnet20v1, 7)",
    ),
    "unknown path": (post(predict(PIXELS), "/v2/predict"), 404, "Malformed request"),
    "unknown signature": (
        post(predict(PIXELS, signature_name="nope")),
        400,
        'signature name: "nope" not found',
    ),
    "wrong shape": (post(predict([[1, 2]])), 400, "Shape of tensor images [1,2] is not compatible"),
    "wrong dtype": (
        post(predict(np.full((1, 32, 32, 3), 0.5).tolist(), signature_name="serving_uint8")),
        400,
        "input 'images' is uint8; got non-integer numbers",
    ),
    "strings for pixels": (post(predict([["a"]])), 400, "must hold numbers"),
    "wrong input name": (
        post(predict([{"pixels": PIXELS[0]}])),
        400,
        "instance 0 has inputs ['pixels']; signature 'serving_default' takes ['images']",
    ),
    "body not an object": (post(b"[1, 2]"), 400, "request body must be a JSON object"),
    "PUT": (b"PUT /v1/models/x HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405, "method PUT"),
    "not HTTP": (b"HELLO\r\n\r\n", 400, "Bad request syntax"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_requests_get_a_4xx_and_a_json_error(server, exported, case):
    data, status, message = CASES[case]
    data = data.replace(b"{name}", exported.name.encode())
    code, headers, body, _ = exchange(server, data)
    assert code == status, body
    assert list(body) == ["error"] and message in body["error"], body
    assert headers["content-type"] == "application/json"
    if status in (411, 413) or "Content-Length" in case:
        assert headers["connection"] == "close"  # the body was not read


def test_a_body_shorter_than_its_length_is_answered_not_waited_for(server, exported):
    data = post(predict(PIXELS)).replace(b"{name}", exported.name.encode())
    code, _, body, _ = exchange(server, data[:-10], half_close=True)
    assert code == 400 and "request body ended after" in body["error"]
    code, _, body, seconds = exchange(server, data[:-10])  # and the client stalls
    assert code == 408 and "not received within 1 s" in body["error"]
    assert seconds < TIMEOUT + 5


def test_connection_keeps_serving_after_an_error(server, exported):
    host, port = server.rest_address.split(":")
    good = post(predict(PIXELS)).replace(b"{name}", exported.name.encode())
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        reader = sock.makefile("rb")
        for data in (post(b"images please"), good):
            sock.sendall(data)
            status = reader.readline()
            length = 0
            while (line := reader.readline().strip()) != b"":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = json.loads(reader.read(length))
        assert status.startswith(b"HTTP/1.1 200") and len(body["predictions"]) == 1


# --- non-finite numbers ------------------------------------------------------------------------


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_pixels_are_refused_over_rest(server, exported, token):
    pixels = json.dumps(PIXELS).encode().replace(b"0.0", token, 1)
    data = post(b'{"instances": ' + pixels + b"}").replace(b"{name}", exported.name.encode())
    code, _, body, _ = exchange(server, data)
    assert code == 400 and body == {"error": "input 'images' holds NaN or infinite numbers"}


def test_non_finite_pixels_are_refused_over_grpc_and_by_the_signatures(server, exported, sample):
    pixels = sample.x_test[:2].astype(np.float32)
    pixels[1, 3, 4, 0] = np.nan
    request = client.predict_request(exported.name, "serving_default", {"images": pixels})
    with pytest.raises(UserError, match="INVALID_ARGUMENT: input 'images' holds NaN or infinite"):
        client.grpc_predict(server.grpc_address, request)
    # The signatures refuse them themselves, wherever they are served.
    loaded = tf.saved_model.load(str(exported.savedmodel))
    for name in ("serving_default", "probabilities"):
        with pytest.raises(tf.errors.InvalidArgumentError, match="images must be finite pixel"):
            loaded.signatures[name](images=tf.constant(pixels))
    # And the client does not send them.
    with pytest.raises(UserError, match="1 pixel values are NaN or infinite"):
        client.rest_predict_body(images=pixels)
    with pytest.raises(UserError, match="1 pixel values are NaN or infinite"):
        client.grpc_predict_request(exported.name, images=pixels)
    with pytest.raises(UserError, match="NaN or infinite numbers; JSON has none"):
        client.rest_predict(server.rest_address, exported.name, {"instances": [float("inf")]})


def test_a_model_answering_nan_gets_a_500_in_valid_json(tmp_path):
    # A model whose weights went NaN answers NaN for any input: that is not for the client to fix,
    # and JSON has no NaN to write it with.
    inputs = keras.Input((4, 4, 3))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    model.set_weights([np.full(w.shape, np.nan, np.float32) for w in model.get_weights()])
    inference = InferenceModel(model, (4, 4), 3, "float32", "none")
    export_savedmodel(inference, tmp_path / "broken" / "1", ["a", "b", "c"], top_k=2)
    with LocalServer(tmp_path) as broken:
        data = post(predict(np.zeros((1, 4, 4, 3)).tolist()), "/v1/models/broken:predict")
        code, _, body, _ = exchange(broken, data)
    assert code == 500 and "NaN or infinite numbers, which JSON cannot carry" in body["error"]
