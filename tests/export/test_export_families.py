"""Other networks than the CIFAR v1 one of the main fixture: ImageNet-style, and very deep."""

from __future__ import annotations

import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_preact
from export.pipeline import export_model
from export.verify import FLOAT_TOLERANCE
from keras_preact.preprocessing import normalization_layer


def test_imagenet_family_without_preprocess_layer(tmp_path, sample):
    # ImageNet-style stem and projection shortcuts, built without normalisation inside: the
    # export puts ImageNet normalisation in front and every artifact still takes raw pixels.
    model = keras_preact.ResNet18V2(input_shape=(32, 32, 3), classes=10, preprocessing=None)
    path = tmp_path / "resnet18v2.keras"
    model.save(path)
    result = export_model(
        path,
        tmp_path / "repo",
        preprocessing="imagenet",
        formats="savedmodel,onnx",
        quantize="",
        num_images=16,
        latency_runs=0,
        log=lambda message: None,
    )
    assert result.published, result.report.failures
    assert result.report.metadata["preprocessing"] == "imagenet"
    assert [r.name for r in result.report.rows][-2:] == ["savedmodel:serving_bytes", "onnx"]
    loaded = tf.saved_model.load(str(result.savedmodel))
    images = sample.x_test[:4].astype(np.float32)
    out = loaded.signatures["serving_default"](images=tf.constant(images))["probabilities"]
    mean, std = keras_preact.mean_std("imagenet")
    expected = model.predict((images - mean) / std, verbose=0)
    assert np.max(np.abs(out.numpy() - expected)) <= FLOAT_TOLERANCE


@pytest.mark.slow
def test_graph_deeper_than_resnet1001_exports(tmp_path, sample):
    # ResNet-1001 v2 has 3,341 layers; exporting it takes many minutes on two cores (TensorFlow
    # tracing and saving thousands of variables), too long for CI. Depth is what can break an
    # export (Python recursion in Keras' graph walks when loading the .keras file), so this
    # checks a cheap graph that is deeper: 3,455 layers in one chain with skip connections,
    # through load, SavedModel and TFLite, every artifact verified. (ONNX is left out: tf2onnx's
    # transpose optimiser is quadratic in such a chain, minutes for this graph.)
    limit = sys.getrecursionlimit()
    with keras_preact.deep_graph_recursion():
        inputs = keras.Input((32, 32, 3))
        x = keras.layers.Conv2D(4, 3, padding="same")(normalization_layer("cifar10")(inputs))
        for i in range(2300):
            y = keras.layers.ReLU()(x)
            x = keras.layers.Average()([x, y]) if i % 2 else y
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x), name="deep")
        model.save(tmp_path / "deep.keras")
    assert len(model.layers) > 3341  # ResNet-1001 v2's layers, all on one path here
    result = export_model(
        tmp_path / "deep.keras",
        tmp_path / "repo",
        formats="savedmodel,tflite",
        quantize="",
        num_images=16,
        latency_runs=0,
        log=lambda message: None,
    )
    assert result.published, result.report.failures
    assert [r.name for r in result.report.rows] == [
        "keras",
        "savedmodel:serving_default",
        "savedmodel:serving_uint8",
        "savedmodel:serving_bytes",
        "tflite:float32",
    ]
    assert all(np.isfinite(r.max_abs_diff) for r in result.report.rows)
    assert sys.getrecursionlimit() == limit  # raised only while walking the graph
