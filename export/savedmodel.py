"""SavedModel for TF Serving: four signatures over one traced model, plus warm-up requests.

Signatures; the first three return all four outputs, ``probabilities`` only the first::

    serving_default  images       DT_FLOAT  (-1, H, W, 3)  raw RGB pixels in [0, 255]
    serving_uint8    images       DT_UINT8  (-1, H, W, 3)  raw RGB pixels
    serving_bytes    image_bytes  DT_STRING (-1)           encoded JPEG/PNG/GIF/BMP/WebP, any size
                                                           up to the pixel limit
    probabilities    images       DT_FLOAT  (-1, H, W, 3)  raw RGB pixels in [0, 255]

    probabilities  DT_FLOAT  (-1, classes)
    top_k_ids      DT_INT32  (-1, k)
    top_k_scores   DT_FLOAT  (-1, k)
    top_k_labels   DT_STRING (-1, k)

A signature has one dtype per input, so float32 and uint8 pixels get one signature each
(``serving_default`` is float32 because JSON numbers of either kind convert to it). The
``probabilities`` signature is the plain model (no decoding, no label strings): TFLite and ONNX
are converted from it, so the edge files hold the very graph TF Serving runs.

Both float32 signatures refuse NaN or infinite pixels (``tf.debugging.check_numerics``: the
request fails with ``images must be finite pixel values : Tensor had NaN values``) rather than
answer NaN probabilities with confident-looking labels; the check costs one pass over the input.
The TFLite converter and tf2onnx drop that op, so the TFLite and ONNX files do not check: their
callers feed them pixels they decoded themselves.

``serving_bytes`` reads each image's size from its header before decoding it and refuses an image
of more than ``max_pixels`` pixels (``python -m export --max-image-pixels``; 8192 x 8192 by
default, see ``keras_preact.image_limits``): ``image of 14000 x 14000 pixels is over the limit of
67108864 decoded pixels``. A small file can hold a huge image, and TF Serving decodes what the
signature tells it to.

Written with ``tf.saved_model.save`` and ``tf.function`` signatures over a trackable that holds
the model's variables, rather than Keras 3's ``keras.export.ExportArchive``: ExportArchive walks
every Keras layer's trackable children to look for lookup tables and traces each endpoint again at
save time, which made exporting ResNet-164 three times slower (77 s against 26 s here) and
ResNet-1001 take many minutes. The model is traced once, and the four signatures call that trace.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

import keras_preact
from export.client import predict_request
from export.images import encode_images
from export.model import InferenceModel
from export.options import DEFAULT_TOP_K
from keras_preact import image_limits, image_views

DEFAULT_SIGNATURE = "serving_default"
UINT8_SIGNATURE = "serving_uint8"
BYTES_SIGNATURE = "serving_bytes"
PROBABILITIES_SIGNATURE = "probabilities"
SIGNATURE_INPUTS: dict[str, tuple[str, tf.DType]] = {
    DEFAULT_SIGNATURE: ("images", tf.float32),
    UINT8_SIGNATURE: ("images", tf.uint8),
    BYTES_SIGNATURE: ("image_bytes", tf.string),
    PROBABILITIES_SIGNATURE: ("images", tf.float32),
}
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"


def serving_functions(
    inference: InferenceModel,
    labels: Sequence[str],
    top_k: int = DEFAULT_TOP_K,
    bytes_resize: str = "stretch",
    max_pixels: int = image_limits.DEFAULT_MAX_PIXELS,
) -> dict[str, tuple[Callable, list[tf.TensorSpec]]]:
    """The serving endpoints as ``{signature_name: (function, input_signature)}``.

    Args:
        inference: the float32 raw-pixel model (see :func:`export.model.prepare_inference_model`).
        labels: one name per class, returned for the top-k ids.
        top_k: how many classes ``top_k_*`` outputs hold (at most the number of classes).
        bytes_resize: how ``serving_bytes`` sizes a decoded image (``export.options.BYTES_RESIZES``):
            ``stretch`` resizes the whole image to the input; ``center-crop`` takes
            ``keras_preact.image_views.center`` of it (square inputs only).
        max_pixels: ``serving_bytes`` refuses an image of more pixels than this, by its header,
            before decoding it (``keras_preact.image_limits``).
    """
    model = inference.model
    height, width = inference.image_size
    k = min(top_k, inference.classes)
    label_names = list(labels)

    # Traced once and called by all four signatures: tracing a 1,000-layer network is the
    # slow part of exporting it, and it is the same graph for every input format.
    @tf.function(
        input_signature=[tf.TensorSpec((None, height, width, 3), tf.float32)], autograph=False
    )
    def probabilities_of(images: tf.Tensor) -> tf.Tensor:
        return tf.cast(model(images, training=False), tf.float32)

    def outputs(images: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = probabilities_of(images)
        scores, ids = tf.math.top_k(probabilities, k=k)
        return {
            "probabilities": probabilities,
            "top_k_ids": ids,
            "top_k_scores": scores,
            "top_k_labels": tf.gather(tf.constant(label_names), ids),
        }

    def checked(images: tf.Tensor) -> tf.Tensor:
        # Signature shapes are not enforced by TF Serving, and a fully convolutional network
        # would quietly classify a 16x16 image: fail such a request with a clear message.
        return tf.ensure_shape(images, (None, height, width, 3))

    def finite(images: tf.Tensor) -> tf.Tensor:
        # NaN or infinite pixels would give NaN probabilities and confident-looking top-k
        # labels: fail the request instead ("... : Tensor had NaN values").
        return tf.debugging.check_numerics(images, "images must be finite pixel values")

    def serve_float(images):
        return outputs(finite(checked(images)))

    def serve_probabilities(images):
        return {"probabilities": probabilities_of(finite(checked(images)))}

    def serve_uint8(images):
        return outputs(tf.cast(checked(images), tf.float32))

    def decode(data: tf.Tensor) -> tf.Tensor:
        # decode_image fails the request with a clear InvalidArgumentError ("Unknown image file
        # format", "Invalid PNG", "Input is empty", ...) rather than crashing the server; an
        # image over the pixel limit is refused by its header before it is decoded.
        with tf.control_dependencies([image_limits.assert_within(data, max_pixels)]):
            image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
        if bytes_resize == "center-crop":
            # The view training.images validates on (the input is square: see the export plan).
            return image_views.center(image, height)[0]
        # Bilinear resizing of an image that already has the model's size is an exact copy.
        return tf.image.resize(image, (height, width), method="bilinear", antialias=True)

    def serve_bytes(image_bytes):
        images = tf.map_fn(
            decode, image_bytes, fn_output_signature=tf.TensorSpec((height, width, 3), tf.float32)
        )
        return outputs(images)

    pixel_shape = (None, height, width, 3)
    return {
        DEFAULT_SIGNATURE: (serve_float, [tf.TensorSpec(pixel_shape, tf.float32, name="images")]),
        UINT8_SIGNATURE: (serve_uint8, [tf.TensorSpec(pixel_shape, tf.uint8, name="images")]),
        BYTES_SIGNATURE: (serve_bytes, [tf.TensorSpec((None,), tf.string, name="image_bytes")]),
        PROBABILITIES_SIGNATURE: (
            serve_probabilities,
            [tf.TensorSpec(pixel_shape, tf.float32, name="images")],
        ),
    }


def export_savedmodel(
    inference: InferenceModel,
    path: str | Path,
    labels: Sequence[str],
    *,
    top_k: int = DEFAULT_TOP_K,
    warmup_images: np.ndarray | None = None,
    model_name: str = "model",
    bytes_resize: str = "stretch",
    max_pixels: int = image_limits.DEFAULT_MAX_PIXELS,
) -> Path:
    """Write the serving SavedModel (four signatures) to a new directory ``path``.

    Args:
        inference: the float32 raw-pixel model.
        path: directory to create; it must not exist yet.
        labels: one name per class.
        top_k: size of the ``top_k_*`` outputs.
        warmup_images: uint8 ``(N, H, W, 3)`` real images for
            ``assets.extra/tf_serving_warmup_requests`` (none written when ``None``).
        model_name: model name recorded in the warm-up requests.
        bytes_resize: how ``serving_bytes`` sizes a decoded image (see :func:`serving_functions`).
        max_pixels: the largest image ``serving_bytes`` decodes (see :func:`serving_functions`).
    """
    path = Path(path)
    with keras_preact.deep_graph_recursion():  # deep graphs: be safe wherever Python recurses
        signatures = {
            name: tf.function(fn, input_signature=spec, autograph=False).get_concrete_function()
            for name, (fn, spec) in serving_functions(
                inference, labels, top_k, bytes_resize, max_pixels
            ).items()
        }
        # Save the tf.Variables the traced graphs capture (not the Keras variables wrapping
        # them), as ExportArchive does: a SavedModel whose variables hang under other objects
        # is not frozen by the TFLite converter, which then emits READ_VARIABLE ops.
        captured = {id(v): v for fn in signatures.values() for v in fn.variables}
        root = tf.Module()
        root.serving_variables = list(captured.values())
        tf.saved_model.save(root, str(path), signatures=signatures)
    if warmup_images is not None:
        write_warmup_requests(path / WARMUP_FILE, warmup_requests(warmup_images, model_name))
    return path


def warmup_requests(
    images: np.ndarray, model_name: str, batch_sizes: Sequence[int] = (1, 8)
) -> list[predict_pb2.PredictRequest]:
    """One PredictRequest per signature and batch size, built from real uint8 images."""
    requests = []
    for batch in batch_sizes:
        batch_images = np.asarray(images[:batch], np.uint8)
        values = {
            DEFAULT_SIGNATURE: batch_images.astype(np.float32),
            UINT8_SIGNATURE: batch_images,
            BYTES_SIGNATURE: np.array(encode_images(batch_images, "png"), dtype=object),
        }
        for signature, value in values.items():
            requests.append(
                predict_request(model_name, signature, {SIGNATURE_INPUTS[signature][0]: value})
            )
    return requests


def write_warmup_requests(path: str | Path, requests: Sequence[predict_pb2.PredictRequest]) -> None:
    """Write ``requests`` as PredictionLog records in the TFRecord file TF Serving replays."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())


def run_signature(
    loaded, signature_name: str, inputs: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Call a signature of a ``tf.saved_model.load``-ed model on numpy inputs."""
    fn = loaded.signatures[signature_name]
    outputs = fn(**{key: tf.constant(value) for key, value in inputs.items()})
    return {key: value.numpy() for key, value in outputs.items()}


class SavedModelRunner:
    """Probabilities from one signature of an exported SavedModel, for verification.

    ``signature`` picks how the uint8 images are sent: as float32 pixels, as uint8 pixels, or
    PNG-encoded bytes. For a ``center-crop`` ``serving_bytes`` (``bytes_resize``), each image is
    sent framed by a border of its own edge pixels, sized so that the signature's central crop is
    exactly the image: its answer is then comparable with the model's on the image itself, while
    the decoding and cropping run as they do in serving.
    """

    def __init__(
        self, saved_model, signature: str = DEFAULT_SIGNATURE, bytes_resize: str = "stretch"
    ) -> None:
        # A path, or an already loaded SavedModel (loading a deep one takes a while).
        is_path = isinstance(saved_model, (str, Path))
        self.loaded = tf.saved_model.load(str(saved_model)) if is_path else saved_model
        self.signature = signature
        self.bytes_resize = bytes_resize
        self.input_key = SIGNATURE_INPUTS[signature][0]
        # PNG encodings by image batch, so timing serving_bytes times the model, not the client.
        self._encoded: dict[bytes, np.ndarray] = {}

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for uint8 ``(N, H, W, 3)`` images."""
        images = np.asarray(images, np.uint8)
        if self.signature in (DEFAULT_SIGNATURE, PROBABILITIES_SIGNATURE):
            value = images.astype(np.float32)
        elif self.signature == UINT8_SIGNATURE:
            value = images
        else:
            key = hashlib.sha1(images.tobytes()).digest() + bytes(str(images.shape), "ascii")
            if key not in self._encoded:
                framed = (
                    framed_for_center_crop(images) if self.bytes_resize != "stretch" else images
                )
                self._encoded[key] = np.array(encode_images(framed, "png"), dtype=object)
            value = self._encoded[key]
        return run_signature(self.loaded, self.signature, {self.input_key: value})["probabilities"]


def framed_for_center_crop(images: np.ndarray) -> np.ndarray:
    """Square uint8 ``(N, S, S, 3)`` images framed by their edge pixels to the side
    ``keras_preact.image_views`` resizes to before its central ``S`` x ``S`` crop, placed where
    that crop starts: the crop of the framed image is the image, pixel for pixel."""
    side = images.shape[1]
    border = image_views.scaled(image_views.RESIZE, side) - side
    before = border // 2
    return np.pad(
        images, ((0, 0), (before, border - before), (before, border - before), (0, 0)), "edge"
    )
