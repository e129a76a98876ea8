"""The serving SavedModel: signatures, real encoded images, errors, warm-up, models.config."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from export.images import encode_images
from export.savedmodel import WARMUP_FILE
from export.verify import FLOAT_TOLERANCE
from keras_preact.datasets import CIFAR10_LABELS

SIGNATURES = {
    "serving_default": ("images", tf.float32, [None, 32, 32, 3]),
    "serving_uint8": ("images", tf.uint8, [None, 32, 32, 3]),
    "serving_bytes": ("image_bytes", tf.string, [None]),
    "probabilities": ("images", tf.float32, [None, 32, 32, 3]),
}
OUTPUTS = {
    "probabilities": (tf.float32, [None, 10]),
    "top_k_ids": (tf.int32, [None, 5]),
    "top_k_scores": (tf.float32, [None, 5]),
    "top_k_labels": (tf.string, [None, 5]),
}


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(str(exported.savedmodel))


def test_signature_names_dtypes_and_shapes(loaded):
    assert set(loaded.signatures) == set(SIGNATURES)
    for name, (key, dtype, shape) in SIGNATURES.items():
        fn = loaded.signatures[name]
        [spec] = fn.structured_input_signature[1].values()
        assert list(fn.structured_input_signature[1]) == [key]
        assert spec.dtype == dtype and spec.shape.as_list() == shape, name
        outputs = fn.structured_outputs
        expected = {"probabilities"} if name == "probabilities" else set(OUTPUTS)
        assert set(outputs) == expected, name
        for out in expected:
            assert outputs[out].dtype == OUTPUTS[out][0]
            assert outputs[out].shape.as_list() == OUTPUTS[out][1], (name, out)


def test_saved_model_cli_lists_every_signature(exported):
    cli = Path(sys.executable).with_name("saved_model_cli")
    command = (
        [str(cli)]
        if cli.exists()
        else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    )
    out = subprocess.run(
        [*command, "show", "--all", "--dir", str(exported.savedmodel)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    for name, (key, dtype, shape) in SIGNATURES.items():
        block = out.split(f"signature_def['{name}']:")[1].split("signature_def[")[0]
        dims = ", ".join("-1" if d is None else str(d) for d in shape)
        assert re.search(
            rf"inputs\['{key}'\] tensor_info:\s+dtype: {types_pb2.DataType.Name(dtype.as_datatype_enum)}\s+"
            rf"shape: \({re.escape(dims)}\)",
            block,
        ), block
        assert "outputs['probabilities'] tensor_info:\n        dtype: DT_FLOAT\n" in block
        assert "Method name is: tensorflow/serving/predict" in block
    assert "outputs['top_k_labels'] tensor_info:\n        dtype: DT_STRING" in out


def test_pixel_and_png_signatures_give_keras_probabilities(loaded, sample, keras_probabilities):
    images = sample.x_test[:64]
    ref = keras_probabilities[:64]
    by_float = loaded.signatures["serving_default"](images=tf.constant(images, tf.float32))
    by_uint8 = loaded.signatures["serving_uint8"](images=tf.constant(images))
    png = tf.constant(encode_images(images, "png"))
    by_png = loaded.signatures["serving_bytes"](image_bytes=png)
    for out in (by_float, by_uint8, by_png):
        assert np.max(np.abs(out["probabilities"].numpy() - ref)) <= FLOAT_TOLERANCE
    # Top-k outputs are consistent with the probabilities and the label names.
    ids = by_png["top_k_ids"].numpy()
    probs = by_png["probabilities"].numpy()
    np.testing.assert_array_equal(ids[:, 0], ref.argmax(axis=1))
    np.testing.assert_allclose(
        by_png["top_k_scores"].numpy(), np.take_along_axis(probs, ids, axis=1)
    )
    assert np.all(np.diff(by_png["top_k_scores"].numpy(), axis=1) <= 0)
    labels = by_png["top_k_labels"].numpy().astype(str)
    np.testing.assert_array_equal(labels, np.asarray(CIFAR10_LABELS)[ids])


def test_jpeg_and_other_sizes_are_decoded_and_resized_inside(loaded, sample):
    images = sample.x_test[:16]
    jpeg = encode_images(images, "jpeg")
    # What the client would get by decoding the same JPEG bytes itself, sent as pixels.
    decoded = np.stack([tf.io.decode_jpeg(b, channels=3).numpy() for b in jpeg])
    by_jpeg = loaded.signatures["serving_bytes"](image_bytes=tf.constant(jpeg))["probabilities"]
    by_pixels = loaded.signatures["serving_uint8"](images=tf.constant(decoded))["probabilities"]
    assert np.max(np.abs(by_jpeg.numpy() - by_pixels.numpy())) <= FLOAT_TOLERANCE
    # A 64x48 PNG is resized to 32x32 inside the signature, like tf.image.resize would.
    big = tf.image.resize(images, (64, 48), method="nearest").numpy().astype(np.uint8)
    by_big = loaded.signatures["serving_bytes"](image_bytes=tf.constant(encode_images(big)))
    resized = tf.image.resize(big, (32, 32), method="bilinear", antialias=True)
    expected = loaded.signatures["serving_default"](images=resized)["probabilities"]
    np.testing.assert_allclose(by_big["probabilities"].numpy(), expected.numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "bad, message",
    [
        (b"definitely not an image", "Unknown image file format"),
        (b"", "Input is empty"),
        ("truncated-png", "PNG"),
    ],
)
def test_undecodable_bytes_fail_the_request_clearly(loaded, sample, bad, message):
    if bad == "truncated-png":
        bad = encode_images(sample.x_test[:1], "png")[0][:60]
    good = encode_images(sample.x_test[:1], "png")[0]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures["serving_bytes"](image_bytes=tf.constant([good, bad]))
    # The model is not broken by it: the next request is answered.
    out = loaded.signatures["serving_bytes"](image_bytes=tf.constant([good]))
    assert out["probabilities"].shape == (1, 10)


@pytest.mark.parametrize(
    "signature, value",
    [
        ("serving_default", np.zeros((1, 16, 16, 3), np.float32)),  # wrong size
        ("serving_default", np.zeros((32, 32, 3), np.float32)),  # missing batch axis
        ("serving_uint8", np.zeros((1, 32, 32, 3), np.float32)),  # wrong dtype
        ("serving_bytes", np.zeros((1, 32, 32, 3), np.uint8)),  # pixels to the bytes signature
    ],
)
def test_wrong_shapes_and_dtypes_are_rejected(loaded, signature, value):
    key = SIGNATURES[signature][0]
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        loaded.signatures[signature](**{key: tf.constant(value)})


def test_warmup_records_parse_and_replay(exported, loaded, keras_model):
    path = exported.savedmodel / WARMUP_FILE
    # Read as TF Serving replays them: PredictionLog records of a TFRecord file.
    logs = [
        prediction_log_pb2.PredictionLog.FromString(record.numpy())
        for record in tf.data.TFRecordDataset(str(path))
    ]
    assert len(logs) == 6  # three signatures x batch sizes 1 and 8
    seen = set()
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.name == exported.name
        signature = request.model_spec.signature_name
        key = SIGNATURES[signature][0]
        assert list(request.inputs) == [key]
        value = tf.make_ndarray(request.inputs[key])
        seen.add((signature, len(value)))
        outputs = loaded.signatures[signature](**{key: tf.constant(value)})
        if signature == "serving_bytes":
            pixels = np.stack([tf.io.decode_png(b).numpy() for b in value])
        else:
            pixels = value
        ref = keras_model.predict(pixels.astype(np.float32), verbose=0)
        assert np.max(np.abs(outputs["probabilities"].numpy() - ref)) <= FLOAT_TOLERANCE
    assert seen == {
        (s, n) for s in ("serving_default", "serving_uint8", "serving_bytes") for n in (1, 8)
    }


def test_models_config_parses_as_model_server_config(exported):
    text = (exported.repository / "models.config").read_text()
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    [entry] = config.model_config_list.config
    assert entry.name == exported.name
    assert entry.base_path == f"/models/{exported.name}"
    assert entry.model_platform == "tensorflow"
    assert entry.model_version_policy.latest.num_versions == 1


def test_deploy_files_match_what_export_writes(exported, tmp_path):
    from export import repository

    deploy = Path(repository.__file__).parent / "deploy"
    template = text_format.Parse(
        (deploy / "models.config.template").read_text(),
        model_server_config_pb2.ModelServerConfig(),
    )
    assert template == repository.models_config_with(tmp_path, "resnet20v1")
    compose = (deploy / "docker-compose.yml").read_text()
    # The compose file mounts the repository where models.config's base paths point.
    assert f":{repository.DEFAULT_BASE_PATH}:ro" in compose
    assert f"--model_config_file={repository.DEFAULT_BASE_PATH}/models.config" in compose
    assert '"8500:8500"' in compose and '"8501:8501"' in compose


def test_center_crop_bytes_serve_the_view_training_validates_on(
    trained_model_path, keras_model, sample, tmp_path
):
    from export.client import decode_and_resize
    from export.pipeline import export_model
    from training.data.images.feed import eval_image

    result = export_model(
        trained_model_path,
        tmp_path / "repo",
        formats="savedmodel",
        labels="cifar10",
        bytes_resize="center-crop",
        num_images=32,
        latency_runs=0,
        log=lambda message: None,
    )
    # Verification sent serving_bytes framed images whose central crop is the image itself.
    assert result.published and result.report.passed
    assert "savedmodel:serving_bytes" in [row.name for row in result.report.rows]
    report = json.loads((result.artifacts_dir / "report.json").read_text())
    assert report["bytes_resize"] == "center-crop"
    loaded = tf.saved_model.load(str(result.savedmodel))
    # Photos of other sizes and aspect ratios, as JPEG and PNG.
    photos = []
    for i, (size, fmt) in enumerate([((48, 80), "jpeg"), ((90, 40), "png"), ((37, 37), "jpeg")]):
        image = tf.image.resize(sample.x_test[i : i + 1], size, antialias=True)
        photos += encode_images(np.round(image.numpy()).astype(np.uint8), fmt)
    served = loaded.signatures["serving_bytes"](image_bytes=tf.constant(photos))["probabilities"]
    # training.images validates (and training.evaluate --protocol center tests) on this view.
    views = np.stack([eval_image(tf.constant(p), 32).numpy() for p in photos])
    expected = keras_model.predict(views, verbose=0)
    assert np.max(np.abs(served.numpy() - expected)) <= FLOAT_TOLERANCE
    # A stretched photo is another input: the comparison above can tell the two apart.
    stretched = np.stack(
        [tf.image.resize(tf.io.decode_image(p, 3), (32, 32), antialias=True) for p in photos]
    )
    assert np.max(np.abs(keras_model.predict(stretched, verbose=0) - expected)) > 1e-3
    # export.client --send pixels --resize center-crop sends the same view, in whole pixels.
    pixels = decode_and_resize(photos, 32, ["a", "b", "c"], "center-crop")
    np.testing.assert_array_equal(pixels, np.clip(np.round(views), 0, 255).astype(np.uint8))
