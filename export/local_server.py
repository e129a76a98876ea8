"""A small stand-in for TF Serving, for tests and local trials: NOT TensorFlow Serving.

It answers TF Serving's REST predict API (``POST /v1/models/<name>[/versions/<v>]:predict`` with
``instances`` or ``inputs``, ``signature_name``, ``{"b64": ...}`` binary values, ``{"error": ...}``
on failure) and model status (``GET /v1/models/<name>``), and the gRPC
``PredictionService/Predict`` call, from the SavedModels of a model repository
(``DIR/<name>/<version>/``), on 127.0.0.1. It runs the same signatures TF Serving would, through
``tf.saved_model.load``; batching, model policies, config reloading and the C++ server's exact
error texts are not reproduced.

    python -m export.local_server runs/demo/export --rest-port 8501 --grpc-port 8500

Every request it cannot answer gets an HTTP 4xx and a JSON ``{"error": "..."}`` body, and the
connection is answered, never dropped: a body that is not JSON (or nested too deeply), a
``Content-Length`` that is missing (411; chunked bodies are not supported), not a number or
negative (400), a body over ``max_request_bytes`` (413; 64 MiB by default, ``--max-request-mb``),
a body that does not arrive within ``request_timeout`` (408; a minute by default), an unknown model, version (404) or signature,
inputs of the wrong names, shape or type, booleans where numbers belong, NaN or infinite numbers
or numbers beyond float32's range (400; pixel values are otherwise passed to the model as they
are), an encoded image over the exported ``serving_bytes`` signature's pixel limit (400, refused
by its header before decoding; see ``python -m export --max-image-pixels``). When the body was not
read, the connection is closed after the answer.

gRPC requests get the same answers as INVALID_ARGUMENT or NOT_FOUND. A tensor is checked before it
is converted: its shape must be known and not negative, it may take at most ``--max-request-mb``
once converted (a request can declare a huge shape in a few bytes), and it must hold exactly the
values its shape needs (``tensor_content`` of that many bytes, or that many typed values; one value
fills the shape, as in TensorFlow). Version labels (``model_spec.version_label``) are not kept here
and are refused. The gRPC port is bound exclusively: a port another server holds is refused
(``cannot serve gRPC on ...``, exit 2) rather than shared.

A version folder is loaded before it is reported: one that does not load (empty, truncated, not a
SavedModel) has the status ``END`` with the loader's error, as TF Serving reports a version that
failed to load; a request for it is NOT_FOUND (404) naming that error, and the latest version is
the newest one that loads. A failure of the server itself is a 500 with its
message; so is a model that answers NaN or infinity for finite input, which JSON cannot carry
(answers are written as strict JSON, without the ``NaN`` tokens TF Serving itself can emit).
"""

from __future__ import annotations

import base64
import json
import math
import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from export.client import op_message
from export.options import MODEL_NAME
from keras_preact.command_line import ArgumentParser, UserError, cli_main
from keras_preact.native_logs import add_native_logs_option, show_native_logs

# TensorFlow, gRPC and tensorflow_serving are imported where they are used, so that the command
# line parses its arguments (and filters TensorFlow's log lines) before TensorFlow loads.

DEFAULT_SIGNATURE = "serving_default"
DEFAULT_MAX_REQUEST_BYTES = 64 << 20
MAX_REQUEST_MB = 2047  # gRPC's limit on a message is a 32-bit signed byte count
DEFAULT_REQUEST_TIMEOUT = 60.0  # seconds a client may take to send a request
_PREDICT_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?:predict$")
_STATUS_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?/?$")


class ServingError(Exception):
    """A request the server refuses: HTTP status, gRPC status code and a message."""

    def __init__(
        self, message: str, http_status: int = 400, grpc_code: str = "INVALID_ARGUMENT"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.grpc_code = grpc_code


class _UnreadBody(ServingError):
    """A REST request whose body was not read: answered, then the connection is closed."""


class ModelRepository:
    """SavedModels of ``DIR/<name>/<version>/``, loaded on first use and kept.

    A version folder that does not load (empty, truncated, not a SavedModel) is not served: its
    status is ``END`` with the loader's error, as TF Serving reports a version that failed to load,
    a request for it is answered ``NOT_FOUND`` with that error, and the latest version is the
    newest one that loads. A failed folder is tried again once its files change."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._loaded: dict[tuple[str, int], object] = {}
        self._failed: dict[tuple[str, int], tuple[tuple, str]] = {}
        self._lock = threading.Lock()

    def versions(self, name: str) -> list[int]:
        """Versions of ``name`` that load, ascending (none for a name that is not a model name,
        such as ``..``)."""
        return sorted(v for v, error in self.status(name).items() if error is None)

    def status(self, name: str) -> dict[int, str | None]:
        """``{version: None, or why it does not load}`` for every version folder of ``name``
        (each is loaded to find out)."""
        return {v: self._try_load(name, v, folder)[1] for v, folder in self._folders(name).items()}

    def _folders(self, name: str) -> dict[int, Path]:
        folder = self.root / name
        if not MODEL_NAME.match(name) or not folder.is_dir():
            return {}
        return {int(p.name): p for p in folder.iterdir() if p.name.isdigit() and p.is_dir()}

    def _try_load(self, name: str, version: int, folder: Path) -> tuple[object | None, str | None]:
        """``(the loaded SavedModel, None)`` or ``(None, why it does not load)``."""
        import tensorflow as tf

        key = (name, version)
        with self._lock:
            if key in self._loaded:
                return self._loaded[key], None
            stamp = _stamp(folder)
            if key in self._failed and self._failed[key][0] == stamp:
                return None, self._failed[key][1]
            try:
                self._loaded[key] = tf.saved_model.load(str(folder))
            except Exception as e:  # whatever the loader says about a damaged folder
                lines = str(e).strip().splitlines() or [type(e).__name__]
                error = f"{type(e).__name__}: {lines[0][:300]}"
                self._failed[key] = (stamp, error)
                return None, error
            self._failed.pop(key, None)
            return self._loaded[key], None

    def load(self, name: str, version: int | None):
        """The loaded SavedModel and its version (the newest that loads when ``version`` is
        ``None``)."""
        available = self._folders(name)
        if version is None:
            errors = []
            for candidate in sorted(available, reverse=True):
                loaded, error = self._try_load(name, candidate, available[candidate])
                if loaded is not None:
                    return loaded, candidate
                errors.append(f"version {candidate}: {error}")
            why = f"; no version loads ({'; '.join(errors)})" if errors else ""
            raise ServingError(
                f"Servable not found for request: Latest({name}){why}", 404, "NOT_FOUND"
            )
        if version not in available:
            raise ServingError(
                f"Servable not found for request: Specific({name}, {version})", 404, "NOT_FOUND"
            )
        loaded, error = self._try_load(name, version, available[version])
        if loaded is None:
            raise ServingError(
                f"Servable not found for request: Specific({name}, {version}): version "
                f"{version} failed to load: {error}",
                404,
                "NOT_FOUND",
            )
        return loaded, version

    def predict(
        self, name: str, version: int | None, signature_name: str, inputs: dict[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], int]:
        """Run one signature on numpy inputs converted to its dtypes; returns outputs, version."""
        import tensorflow as tf

        loaded, version = self.load(name, version)
        signature_name = signature_name or DEFAULT_SIGNATURE
        if signature_name not in loaded.signatures:
            raise ServingError(
                f'Serving signature name: "{signature_name}" not found in signature def; '
                f"available: {', '.join(sorted(loaded.signatures))}"
            )
        fn = loaded.signatures[signature_name]
        specs = fn.structured_input_signature[1]
        missing = sorted(set(specs) - set(inputs))
        extra = sorted(set(inputs) - set(specs))
        if missing or extra:
            raise ServingError(
                f"signature {signature_name!r} takes inputs {sorted(specs)}; request has "
                f"{sorted(inputs)}"
            )
        for key, value in inputs.items():
            if value.dtype.kind in "fc" and not np.all(np.isfinite(value)):
                raise ServingError(f"input {key!r} holds NaN or infinite numbers")
        # Shapes are left to the signature, as in TF Serving: the exported signatures check
        # them in-graph (tf.ensure_shape) and fail the request with an InvalidArgumentError.
        tensors = {key: tf.constant(inputs[key], dtype=spec.dtype) for key, spec in specs.items()}
        try:
            outputs = fn(**tensors)
        except tf.errors.InvalidArgumentError as e:
            raise ServingError(op_message(e.message)) from None
        except (TypeError, ValueError) as e:  # refused by the Python function binding
            raise ServingError(str(e).strip().splitlines()[0]) from None
        return {key: value.numpy() for key, value in outputs.items()}, version

    def input_dtypes(self, name: str, version: int | None, signature_name: str) -> dict:
        """``{input name: tf.DType}`` of a signature (for converting JSON values)."""
        loaded, _ = self.load(name, version)
        signature_name = signature_name or DEFAULT_SIGNATURE
        if signature_name not in loaded.signatures:
            raise ServingError(
                f'Serving signature name: "{signature_name}" not found in signature def'
            )
        specs = loaded.signatures[signature_name].structured_input_signature[1]
        return {key: spec.dtype for key, spec in specs.items()}


def _stamp(folder: Path) -> tuple:
    """The files under ``folder`` with their sizes and modification times."""
    try:
        return tuple(
            sorted(
                (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                for p in folder.rglob("*")
            )
        )
    except OSError:
        return ()


# ---------------------------------------------------------------------------------------------
# JSON <-> numpy, as TF Serving's REST API maps them


def _from_json(value, key: str, dtype) -> np.ndarray:
    def unwrap(v):
        if isinstance(v, dict):
            if set(v) != {"b64"}:
                raise ServingError(f'input {key!r}: objects must be {{"b64": ...}}, got {v}')
            try:
                return base64.b64decode(v["b64"], validate=True)
            except (ValueError, TypeError):
                raise ServingError(f"input {key!r}: invalid base64 in b64 value") from None
        if isinstance(v, list):
            return [unwrap(x) for x in v]
        return v

    value = unwrap(value)
    if dtype.name == "string":
        flat = np.array(value, dtype=object)
        for item in flat.ravel():
            if not isinstance(item, (bytes, str)):
                raise ServingError(f"input {key!r} is DT_STRING; got {type(item).__name__} value")
        return flat
    try:
        array = np.array(value)
    except ValueError:
        raise ServingError(f"input {key!r} is not a rectangular (non-ragged) array") from None
    if array.dtype.kind not in "biuf" or (array.dtype.kind == "b") != dtype.is_bool:
        what = "true or false" if dtype.is_bool else "numbers"
        raise ServingError(f"input {key!r} must hold {what} for {dtype.name}; got {array.dtype}")
    if dtype.is_floating and array.dtype.kind == "f" and array.size:
        # Checked before the cast, which would turn them into infinities (and warn).
        finite = np.isfinite(array)
        if not np.all(finite):
            raise ServingError(f"input {key!r} holds NaN or infinite numbers")
        largest = float(np.finfo(dtype.as_numpy_dtype).max)
        if np.abs(array).max() > largest:
            raise ServingError(
                f"input {key!r} holds numbers beyond {dtype.name}'s range (|x| <= {largest:.4g})"
            )
    if dtype.is_integer:
        info = np.iinfo(dtype.as_numpy_dtype)
        if array.dtype.kind == "f" and not np.all(np.equal(np.mod(array, 1), 0)):
            raise ServingError(f"input {key!r} is {dtype.name}; got non-integer numbers")
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise ServingError(
                f"input {key!r} is {dtype.name}: values must be in [{info.min}, {info.max}]"
            )
    return array.astype(dtype.as_numpy_dtype)


def _to_json(key: str, value: np.ndarray):
    if value.dtype == object:
        if key.endswith("_bytes"):  # TF Serving's rule for binary outputs
            return np.vectorize(lambda b: {"b64": base64.b64encode(b).decode()}, otypes=[object])(
                value
            ).tolist()
        return np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(value).tolist()
    return value.tolist()


def rest_predict(repository: ModelRepository, name: str, version: int | None, body) -> dict:
    """Answer a REST ``:predict`` body as TF Serving does (``predictions`` or ``outputs``)."""
    if not isinstance(body, dict):
        raise ServingError("request body must be a JSON object")
    if ("instances" in body) == ("inputs" in body):
        raise ServingError(
            "request must have exactly one of 'instances' (row format) or "
            "'inputs' (columnar format)"
        )
    signature_name = body.get("signature_name")
    if signature_name is not None and not isinstance(signature_name, str):
        raise ServingError(f"'signature_name' must be a string, got {json.dumps(signature_name)}")
    signature_name = signature_name or DEFAULT_SIGNATURE
    dtypes = repository.input_dtypes(name, version, signature_name)
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise ServingError("'instances' must be a non-empty list")
        if all(isinstance(i, dict) and "b64" not in i for i in instances):
            for n, instance in enumerate(instances):
                if set(instance) != set(dtypes):
                    raise ServingError(
                        f"instance {n} has inputs {sorted(instance)}; signature "
                        f"{signature_name!r} takes {sorted(dtypes)}"
                    )
            raw = {key: [i[key] for i in instances] for key in dtypes}
        elif len(dtypes) == 1:
            raw = {next(iter(dtypes)): instances}
        else:
            raise ServingError(
                f"signature has inputs {sorted(dtypes)}: each instance must be an "
                "object with those keys"
            )
    else:
        inputs = body["inputs"]
        if isinstance(inputs, dict) and "b64" not in inputs:
            raw = inputs
        elif len(dtypes) == 1:
            raw = {next(iter(dtypes)): inputs}
        else:
            raise ServingError(f"'inputs' must be an object with keys {sorted(dtypes)}")
    arrays = {}
    for key, value in raw.items():
        if key not in dtypes:
            raise ServingError(
                f"signature {signature_name!r} has no input {key!r}; inputs: {sorted(dtypes)}"
            )
        arrays[key] = _from_json(value, key, dtypes[key])
    outputs, _ = repository.predict(name, version, signature_name, arrays)
    if "instances" in body:
        if len(outputs) == 1:
            return {"predictions": _to_json(*next(iter(outputs.items())))}
        columns = {key: _to_json(key, value) for key, value in outputs.items()}
        n = len(next(iter(columns.values())))
        return {"predictions": [{key: col[i] for key, col in columns.items()} for i in range(n)]}
    if len(outputs) == 1:
        return {"outputs": _to_json(*next(iter(outputs.items())))}
    return {"outputs": {key: _to_json(key, value) for key, value in outputs.items()}}


def _parse_json(raw: bytes):
    try:
        return json.loads(raw)
    except RecursionError:
        raise ServingError("JSON Parse error: nested too deeply") from None
    except ValueError as e:  # not JSON, or not UTF-8
        raise ServingError(f"JSON Parse error: {e}") from None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)  # a client that went away is no news


def _handler(
    repository: ModelRepository, max_request_bytes: int, request_timeout: float
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = request_timeout  # a stalled client is answered 408, not waited for

        def log_message(self, format, *args):
            pass

        def _send(self, status: int, payload: dict, close: bool = False) -> None:
            try:
                data = json.dumps(payload, allow_nan=False).encode("utf-8")
            except ValueError:  # NaN or infinity in a model's answer: no such numbers in JSON
                status = 500
                message = "the model answered NaN or infinite numbers, which JSON cannot carry"
                data = json.dumps({"error": message}).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def send_error(self, code, message=None, explain=None):
            # http.server's own refusals (bad request line, headers too long, unknown method)
            # as JSON too; a method it has no handler for is not allowed rather than unknown.
            if code == 501:
                code, message = 405, f"method {self.command} not allowed; use GET or POST"
            if self.request_version == "HTTP/0.9":  # not HTTP at all: answer in HTTP/1.1 anyway
                self.request_version = "HTTP/1.1"
            self._send(code, {"error": message or self.responses[code][0]}, close=True)

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding"):
                raise _UnreadBody(
                    "request bodies in chunks (Transfer-Encoding) are not supported; send a "
                    "Content-Length",
                    411,
                )
            lengths = self.headers.get_all("Content-Length") or []
            if not lengths:
                raise _UnreadBody("a POST request needs a Content-Length header", 411)
            if len(set(lengths)) > 1 or not re.fullmatch(r"[0-9]+", lengths[0].strip()):
                raise _UnreadBody(f"invalid Content-Length {', '.join(lengths)!r}")
            length = int(lengths[0])
            if length > max_request_bytes:
                raise _UnreadBody(
                    f"request body of {length} bytes is over this server's limit of "
                    f"{max_request_bytes} bytes",
                    413,
                )
            try:
                raw = self.rfile.read(length)
            except TimeoutError:
                raise _UnreadBody(
                    f"request body not received within {request_timeout:g} s", 408
                ) from None
            if len(raw) < length:
                raise _UnreadBody(f"request body ended after {len(raw)} of {length} bytes")
            return raw

        def _discard_unread_body(self) -> None:
            # The answer is out; swallow what the client still sends (for a moment), so that
            # closing the connection does not reset it before the client has read the answer.
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(0.5)
                deadline = time.monotonic() + 2.0
                while time.monotonic() < deadline and self.connection.recv(1 << 16):
                    pass
            except OSError:
                pass

        def do_POST(self):
            try:
                raw = self._read_body()
                match = _PREDICT_PATH.match(self.path)
                if not match:
                    raise ServingError(f"Malformed request: POST {self.path}", 404)
                version = int(match[2]) if match[2] else None
                payload = rest_predict(repository, match[1], version, _parse_json(raw))
            except _UnreadBody as e:
                self._send(e.http_status, {"error": e.message}, close=True)
                self._discard_unread_body()
                return
            except ServingError as e:
                self._send(e.http_status, {"error": e.message})
                return
            except RecursionError:
                self._send(400, {"error": "request nested too deeply"})
                return
            except Exception as e:  # a failure of this server: answered, and its traceback logged
                traceback.print_exc()
                self._send(500, {"error": f"{type(e).__name__}: {e}"})
                return
            self._send(200, payload)

        def do_GET(self):
            match = _STATUS_PATH.match(self.path)
            if not match:
                self._send(404, {"error": f"Malformed request: GET {self.path}"})
                return
            name, version = match.group(1), match.group(2)
            status = repository.status(name)
            if version is not None:
                status = {v: e for v, e in status.items() if v == int(version)}
            if not status:
                self._send(404, {"error": f"Could not find any versions of model {name}"})
                return
            self._send(
                200,
                {
                    "model_version_status": [
                        _version_status(v, status[v]) for v in sorted(status, reverse=True)
                    ]
                },
            )

    return Handler


def _version_status(version: int, error: str | None) -> dict:
    """One entry of TF Serving's model status: AVAILABLE, or END with the load error."""
    if error is None:
        return {
            "version": str(version),
            "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""},
        }
    return {
        "version": str(version),
        "state": "END",
        "status": {"error_code": "UNKNOWN", "error_message": f"failed to load: {error}"},
    }


def tensor_from_proto(key: str, proto, max_bytes: int) -> np.ndarray:
    """The array of a request's TensorProto, checked before anything is allocated: a shape that
    is known and not negative, at most ``max_bytes`` once converted, and exactly the values the
    shape needs (``tensor_content`` of that many bytes, or that many typed values; one value
    fills the shape, as in TensorFlow).

    Raises:
        ServingError: INVALID_ARGUMENT, naming the input.
    """
    import tensorflow as tf

    try:
        dtype = tf.dtypes.as_dtype(proto.dtype)
    except TypeError:
        raise ServingError(f"input {key!r} has an unknown dtype ({proto.dtype})") from None
    if proto.tensor_shape.unknown_rank:
        raise ServingError(f"input {key!r} has no shape (unknown rank)")
    dims = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise ServingError(f"input {key!r} has shape {dims}: sizes cannot be negative")
    count = math.prod(dims)
    itemsize = 8 if dtype == tf.string else dtype.size  # a string costs a pointer at least
    if count * itemsize > max_bytes:
        raise ServingError(
            f"input {key!r} of shape {dims} takes {count * itemsize} bytes as {dtype.name}, over "
            f"this server's limit of {max_bytes} bytes (--max-request-mb)"
        )
    if proto.tensor_content and dtype != tf.string:
        if len(proto.tensor_content) != count * dtype.size:
            raise ServingError(
                f"input {key!r}: tensor_content holds {len(proto.tensor_content)} bytes; shape "
                f"{dims} of {dtype.name} needs {count * dtype.size}"
            )
    else:
        values = sum(len(v) for f, v in proto.ListFields() if f.name.endswith("_val"))
        if dtype.is_complex:
            values //= 2
        if values != count and not (values == 1 and count > 0):
            raise ServingError(
                f"input {key!r} holds {values} values; its shape {dims} needs {count} (or one "
                "value for all)"
            )
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError) as e:
        raise ServingError(f"input {key!r} is not a valid tensor: {e}") from None


def _prediction_service(repository: ModelRepository, max_request_bytes: int):
    """The gRPC ``PredictionService`` (its ``Predict`` call) over ``repository``."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            spec = request.model_spec
            version = spec.version.value if spec.HasField("version") else None
            signature_name = spec.signature_name or DEFAULT_SIGNATURE
            try:
                if spec.HasField("version_label"):  # this server keeps no version labels
                    raise ServingError(
                        f"Unrecognized servable version label: {spec.version_label}; this "
                        "server knows versions by number only"
                    )
                dtypes = repository.input_dtypes(spec.name, version, signature_name)
                if set(request.inputs) != set(dtypes):
                    raise ServingError(
                        f"signature {signature_name!r} takes inputs {sorted(dtypes)}; request "
                        f"has {sorted(request.inputs)}"
                    )
                inputs = {}
                for key, proto in request.inputs.items():
                    expected = dtypes[key]
                    if proto.dtype != expected.as_datatype_enum:
                        try:
                            got = tf.dtypes.as_dtype(proto.dtype).name
                        except TypeError:
                            got = f"dtype {proto.dtype}"
                        raise ServingError(
                            f"input {key!r}: expects {expected.name} but {got} is provided"
                        )
                    inputs[key] = tensor_from_proto(key, proto, max_request_bytes)
                outputs, version = repository.predict(spec.name, version, signature_name, inputs)
            except ServingError as e:
                context.abort(getattr(grpc.StatusCode, e.grpc_code), e.message)
            response = predict_pb2.PredictResponse()
            response.model_spec.name = spec.name
            response.model_spec.signature_name = signature_name
            response.model_spec.version.value = version
            for key, value in outputs.items():
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
            return response

    return PredictionService()


class LocalServer:
    """REST and gRPC servers on 127.0.0.1 (ephemeral ports by default), in background threads.

    ``max_request_bytes`` bounds a REST request's body and a gRPC request message;
    ``request_timeout`` is how many seconds a REST client may take to send its request.

    Use as a context manager::

        with LocalServer("runs/demo/export") as server:
            client.rest_predict(server.rest_address, "resnet20v1", body)
    """

    def __init__(
        self,
        root: str | Path,
        rest_port: int = 0,
        grpc_port: int = 0,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.repository = ModelRepository(root)
        handler = _handler(self.repository, max_request_bytes, request_timeout)
        try:
            self._http = _HTTPServer(("127.0.0.1", rest_port), handler)
        except OSError as e:
            raise UserError(f"cannot serve REST on 127.0.0.1:{rest_port}: {e.strerror}") from None
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4),
            # Without SO_REUSEPORT (on by default in grpcio), a port another server holds is
            # refused here rather than shared, with half the calls going to the other server.
            options=[
                ("grpc.max_receive_message_length", max_request_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _prediction_service(self.repository, max_request_bytes), self._grpc
        )
        try:
            bound = self._grpc.add_insecure_port(f"127.0.0.1:{grpc_port}")
        except RuntimeError:  # grpcio's "Failed to bind to address"
            bound = 0
        if not bound:
            self._http.server_close()
            raise UserError(f"cannot serve gRPC on 127.0.0.1:{grpc_port}: address in use")
        self.rest_address = f"127.0.0.1:{self._http.server_address[1]}"
        self.grpc_address = f"127.0.0.1:{bound}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def start(self) -> LocalServer:
        """Start both servers."""
        self._thread.start()
        self._grpc.start()
        return self

    def stop(self) -> None:
        """Stop both servers and wait for them."""
        self._http.shutdown()
        self._http.server_close()
        self._grpc.stop(grace=None).wait()
        self._thread.join()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    """Serve a model repository until interrupted."""
    p = ArgumentParser(prog="python -m export.local_server", description=__doc__.split("\n\n")[0])
    p.add_argument("repository", help="model repository (DIR/<name>/<version>/)")
    p.add_argument("--rest-port", type=int, default=8501, help="0..65535 (default 8501)")
    p.add_argument("--grpc-port", type=int, default=8500, help="0..65535 (default 8500)")
    p.add_argument(
        "--max-request-mb",
        type=int,
        default=DEFAULT_MAX_REQUEST_BYTES >> 20,
        help="largest request body (REST) or message (gRPC), and largest input tensor once "
        f"converted, in MiB (1..{MAX_REQUEST_MB}); larger REST requests get HTTP 413, larger "
        f"tensors INVALID_ARGUMENT (default {DEFAULT_MAX_REQUEST_BYTES >> 20})",
    )
    add_native_logs_option(p)
    args = p.parse_args(argv)
    if args.native_logs:
        show_native_logs()
    if not Path(args.repository).is_dir():
        raise UserError(f"model repository not found: {args.repository}")
    if not 1 <= args.max_request_mb <= MAX_REQUEST_MB:
        raise UserError(
            f"--max-request-mb must be 1..{MAX_REQUEST_MB} (gRPC messages are under 2 GiB), got "
            f"{args.max_request_mb}"
        )
    for option, port in (("--rest-port", args.rest_port), ("--grpc-port", args.grpc_port)):
        if not 0 <= port <= 65535:
            raise UserError(f"{option} must be a TCP port, 0..65535 (0: any free one), got {port}")
    if args.rest_port == args.grpc_port != 0:
        raise UserError(f"--rest-port and --grpc-port are both {args.rest_port}; give two ports")
    server = LocalServer(
        args.repository, args.rest_port, args.grpc_port, args.max_request_mb << 20
    ).start()
    print(f"REST on http://{server.rest_address}, gRPC on {server.grpc_address} (Ctrl-C stops)")
    try:
        threading.Event().wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
