"""Send images to TF Serving over REST or gRPC and print the predicted labels.

    python -m export.client cat.png dog.jpg --model resnet20v1                  # REST, b64 bytes
    python -m export.client cat.png --model resnet20v1 --protocol grpc --server localhost:8500
    python -m export.client cat.png --model resnet20v1 --send pixels             # raw instances

``--send bytes`` (default) posts the files unchanged to the ``serving_bytes`` signature (decoded
and resized inside the model). ``--send pixels`` decodes and resizes here and sends raw pixels:
JSON numbers to ``serving_default`` over REST, a uint8 tensor to ``serving_uint8`` over gRPC.

Pixels must be finite: the request builders refuse NaN or infinite values (as the exported
signatures do), and bodies are sent as strict JSON, which has no such numbers. ``--send pixels``
refuses an image over ``keras_preact.image_limits``' pixel limit by its header, before decoding
it. ``--timeout`` must be a positive number of seconds and ``--version`` a positive integer; a
server that cannot be reached or does not answer in time is named as such.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import math
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from keras_preact import image_limits, image_views
from keras_preact.command_line import ArgumentParser, UserError, cli_main
from keras_preact.native_logs import add_native_logs_option, show_native_logs

DEFAULT_SIGNATURE = "serving_default"
UINT8_SIGNATURE = "serving_uint8"
BYTES_SIGNATURE = "serving_bytes"
REST_PORT, GRPC_PORT = 8501, 8500
MAX_IMAGE_SIZE = 8192  # --image-size: the side of the square --send pixels resizes to

Predictions = list[list[tuple[str, float]]]


# ---------------------------------------------------------------------------------------------
# REST


def rest_url(server: str, model: str, version: int | None = None) -> str:
    """The ``:predict`` URL of ``model`` (latest version unless ``version``) on ``host:port``."""
    base = server if "://" in server else f"http://{server}"
    path = f"/v1/models/{model}" + (f"/versions/{int(version)}" if version is not None else "")
    return f"{base.rstrip('/')}{path}:predict"


def finite_pixels(images) -> np.ndarray:
    """``images`` as an array, if every value is finite.

    Raises:
        UserError: a NaN or infinite pixel (it would get NaN probabilities, or invalid JSON).
    """
    images = np.asarray(images)
    if images.dtype.kind in "fc" and not np.all(np.isfinite(images)):
        bad = int(np.size(images) - np.count_nonzero(np.isfinite(images)))
        raise UserError(f"{bad} pixel values are NaN or infinite; pixels must be finite")
    return images


def rest_predict_body(
    *,
    images: np.ndarray | None = None,
    image_bytes: Sequence[bytes] | None = None,
    signature_name: str | None = None,
    columnar: bool = False,
) -> dict:
    """A TF Serving REST ``:predict`` request body.

    Exactly one of ``images`` (``(N, H, W, 3)`` pixels, sent as JSON numbers) or ``image_bytes``
    (encoded files, sent as ``{"b64": ...}`` objects) is given. Row format (``instances``) by
    default, columnar (``inputs``) with ``columnar=True``. ``signature_name`` defaults to
    ``serving_bytes`` for bytes and to the server's default signature for pixels.
    """
    if (images is None) == (image_bytes is None):
        raise ValueError("give exactly one of images or image_bytes")
    if images is not None:
        values = finite_pixels(images).tolist()
        key = "images"
    else:
        values = [{"b64": base64.b64encode(data).decode("ascii")} for data in image_bytes]
        key = "image_bytes"
        signature_name = signature_name or BYTES_SIGNATURE
    body: dict = {}
    if signature_name:
        body["signature_name"] = signature_name
    if columnar:
        body["inputs"] = {key: values}
    else:
        body["instances"] = values
    return body


def rest_predict(
    server: str, model: str, body: dict, version: int | None = None, timeout: float = 30.0
) -> dict:
    """POST ``body`` to the model's ``:predict`` URL and return the decoded JSON answer.

    Raises:
        UserError: the server is unreachable, or answered with an error (its message included)
            or with something that is not JSON.
    """
    url = rest_url(server, model, version)
    try:
        data = json.dumps(body, allow_nan=False).encode("utf-8")
    except ValueError:
        raise UserError("the request body holds NaN or infinite numbers; JSON has none") from None
    request = urllib.request.Request(
        url,
        data=data,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            message = json.loads(raw)["error"]
        except (ValueError, KeyError, TypeError):
            message = raw.decode("utf-8", "replace")[:200]
        raise UserError(f"{url} answered HTTP {e.code}: {message}") from None
    except urllib.error.URLError as e:
        raise UserError(f"cannot reach TF Serving at {url}: {e.reason}") from None
    except (OSError, http.client.HTTPException) as e:  # timeout, connection dropped
        raise UserError(f"no answer from TF Serving at {url}: {e or type(e).__name__}") from None
    try:
        return json.loads(raw)
    except ValueError:
        raise UserError(f"{url} answered with something that is not JSON: {raw[:80]!r}") from None


def labels_from_rest(answer: dict) -> Predictions:
    """``[(label, score), ...]`` per image from a REST ``:predict`` answer (row or columnar)."""
    try:
        if "predictions" in answer:
            rows = answer["predictions"]
            return [list(zip(r["top_k_labels"], r["top_k_scores"], strict=True)) for r in rows]
        out = answer["outputs"]
        return [
            list(zip(labels, scores, strict=True))
            for labels, scores in zip(out["top_k_labels"], out["top_k_scores"], strict=True)
        ]
    except (KeyError, TypeError, ValueError):
        raise UserError(
            f"unexpected answer from the server (no top_k_labels and top_k_scores): "
            f"{str(answer)[:200]}"
        ) from None


# ---------------------------------------------------------------------------------------------
# gRPC


def predict_request(
    model_name: str, signature_name: str, inputs: dict[str, np.ndarray], version: int | None = None
):
    """A ``tensorflow_serving.apis.predict_pb2.PredictRequest`` with ``inputs`` as TensorProtos."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def grpc_predict_request(
    model: str,
    *,
    images: np.ndarray | None = None,
    image_bytes: Sequence[bytes] | None = None,
    signature_name: str | None = None,
    version: int | None = None,
):
    """A gRPC ``PredictRequest``: uint8 pixels (``serving_uint8``) or encoded files
    (``serving_bytes``), unless ``signature_name`` says otherwise."""
    if (images is None) == (image_bytes is None):
        raise ValueError("give exactly one of images or image_bytes")
    if images is not None:
        images = finite_pixels(images)
        default = UINT8_SIGNATURE if images.dtype == np.uint8 else DEFAULT_SIGNATURE
        inputs = {"images": images}
    else:
        default = BYTES_SIGNATURE
        inputs = {"image_bytes": np.array(list(image_bytes), dtype=object)}
    return predict_request(model, signature_name or default, inputs, version)


def grpc_predict(server: str, request, timeout: float = 30.0):
    """Send a PredictRequest to TF Serving's gRPC port; returns the PredictResponse.

    Raises:
        UserError: unreachable server or an error status (its code and message included).
    """
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(server) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            return stub.Predict(request, timeout=timeout)
        except grpc.RpcError as e:
            details = " ".join(str(e.details()).split())
            if e.code() == grpc.StatusCode.UNAVAILABLE:  # nobody answered: grpc's own status
                raise UserError(
                    f"cannot reach TF Serving's gRPC port at {server}: {details}"
                ) from None
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise UserError(
                    f"no answer from TF Serving at {server} within {timeout:g} s"
                ) from None
            raise UserError(f"gRPC {server} answered {e.code().name}: {details}") from None


def labels_from_grpc(response) -> Predictions:
    """``[(label, score), ...]`` per image from a gRPC PredictResponse."""
    import tensorflow as tf

    labels = tf.make_ndarray(response.outputs["top_k_labels"])
    scores = tf.make_ndarray(response.outputs["top_k_scores"])
    return [
        [(label.decode("utf-8"), float(score)) for label, score in zip(ls, ss, strict=True)]
        for ls, ss in zip(labels, scores, strict=True)
    ]


# ---------------------------------------------------------------------------------------------
# Command line


def read_images(paths: Sequence[str | Path]) -> list[bytes]:
    """The bytes of each image file."""
    out = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"image file not found: {path}")
        try:
            out.append(path.read_bytes())
        except OSError as e:
            raise UserError(f"cannot read image file {path}: {e.strerror}") from None
    return out


def decode_and_resize(
    files: Sequence[bytes], size: int, names: Sequence[str], resize: str = "stretch"
) -> np.ndarray:
    """Decode JPEG/PNG/GIF/BMP bytes to uint8 ``(N, size, size, 3)``, each image resized whole
    (``resize="stretch"``) or as the ``center-crop`` view of ``serving_bytes`` (see
    ``python -m export --bytes-resize``). An image over ``keras_preact.image_limits``'s pixel
    limit is refused by its header, before it is decoded."""
    import tensorflow as tf

    limit = image_limits.max_pixels()
    out = []
    for data, name in zip(files, names, strict=True):
        try:
            height, width = (int(n) for n in image_limits.header_size(tf.constant(data)))
            if height * width > limit:
                raise UserError(
                    f"image {name} is {width} x {height} pixels, over the limit of {limit} "
                    f"decoded pixels (${image_limits.ENVIRONMENT_VARIABLE})"
                )
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
        except tf.errors.InvalidArgumentError as e:
            raise UserError(f"cannot decode image {name}: {op_message(e.message)}") from None
        if resize == "center-crop":
            resized = image_views.center(image, size)[0]
        else:
            resized = tf.image.resize(image, (size, size), method="bilinear", antialias=True)
        out.append(np.clip(np.round(resized.numpy()), 0, 255).astype(np.uint8))
    return np.stack(out)


def op_message(message: str) -> str:
    """A TensorFlow op's error message without the graph location TensorFlow puts around it
    (``{{function_node ...}}``, ``[[{{node ...}}]]``, ``[Op:DecodeImage]``, ``Detected at node``)."""
    noise = ("Graph execution error", "Detected at node", "<stack traces unavailable>")
    lines = [line.strip() for line in message.splitlines()]
    # "Detected at node" lists the Python lines that defined the op: 'File "...", line N, ...'.
    text = " ".join(line for line in lines if line and not line.startswith((*noise, 'File "')))
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text or message.strip())
    text = re.sub(r"\s*\[\[\{\{node .*$", "", text)
    text = re.sub(r"\s*\[Op:\w+\]( name: \S*)?$", "", text).strip()
    return re.sub(r"^assertion failed: \[(.*)\]$", r"\1", text)  # tf.debugging.Assert's wrapping


def format_predictions(names: Sequence[str], predictions: Predictions) -> str:
    """``name: label (score), ...`` lines."""
    return "\n".join(
        f"{name}: " + ", ".join(f"{label} ({score:.3f})" for label, score in top)
        for name, top in zip(names, predictions, strict=True)
    )


def build_parser() -> argparse.ArgumentParser:
    """The client's command-line options."""
    p = ArgumentParser(
        prog="python -m export.client",
        description="Classify image files with a model served by TF Serving (REST or gRPC).",
    )
    p.add_argument("images", nargs="+", help="JPEG/PNG/GIF/BMP files")
    p.add_argument("--model", required=True, help="model name on the server")
    p.add_argument("--server", help="host:port (default localhost:8501 REST, localhost:8500 gRPC)")
    p.add_argument("--protocol", choices=("rest", "grpc"), default="rest")
    p.add_argument(
        "--send",
        choices=("bytes", "pixels"),
        default="bytes",
        help="encoded files (serving_bytes) or decoded pixels (default: bytes)",
    )
    p.add_argument("--image-size", type=int, default=32, help="model input size for --send pixels")
    p.add_argument(
        "--resize",
        choices=("stretch", "center-crop"),
        help="how --send pixels sizes an image, as the export's --bytes-resize does (default "
        "stretch; encoded images are sized by the server)",
    )
    p.add_argument("--version", type=int, help="model version, 1 or more (default: the latest)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds, more than 0 (default 30)")
    add_native_logs_option(p)
    return p


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    """Read the images, send one request, print the top labels of each image."""
    args = build_parser().parse_args(argv)
    if args.native_logs:
        show_native_logs()
    if not 1 <= args.image_size <= MAX_IMAGE_SIZE:
        raise UserError(f"--image-size must be 1..{MAX_IMAGE_SIZE} pixels, got {args.image_size}")
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise UserError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    if args.version is not None and args.version < 1:
        raise UserError(f"--version must be a positive integer, got {args.version}")
    if args.resize is not None and args.send != "pixels":
        raise UserError(
            "--resize applies to --send pixels; the server sizes encoded images as its export's "
            "--bytes-resize says"
        )
    files = read_images(args.images)
    names = [Path(p).name for p in args.images]
    pixels = (
        decode_and_resize(files, args.image_size, names, args.resize or "stretch")
        if args.send == "pixels"
        else None
    )
    if args.protocol == "rest":
        server = args.server or f"localhost:{REST_PORT}"
        body = (
            rest_predict_body(images=pixels)
            if pixels is not None
            else rest_predict_body(image_bytes=files)
        )
        answer = rest_predict(server, args.model, body, args.version, args.timeout)
        predictions = labels_from_rest(answer)
    else:
        server = args.server or f"localhost:{GRPC_PORT}"
        request = (
            grpc_predict_request(args.model, images=pixels, version=args.version)
            if pixels is not None
            else grpc_predict_request(args.model, image_bytes=files, version=args.version)
        )
        predictions = labels_from_grpc(grpc_predict(server, request, args.timeout))
    print(format_predictions(names, predictions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
