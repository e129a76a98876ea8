"""keras.applications ResNets -> keras-preact v1: the logits of keras.applications, to 1e-4.

keras.applications' ``ResNet50`` (at 224×224), ``ResNet101`` and ``ResNet152`` (64×64) built with
``weights=None``, batch-norm statistics and convolution biases randomised, their weights written in
the legacy HDF5 layout of the files Keras downloads and caches (read back by Keras itself to check
the layout), converted, and run on real images: BGR "caffe" inputs for keras.applications, RGB for
keras-preact.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from convert_helpers import assert_parity, images, keras_logits, randomize_keras, save_keras2_h5

import keras_preact as kp
from keras_preact.convert import convert_checkpoint


def bgr_logits(net: keras.Model, rgb: np.ndarray) -> np.ndarray:
    """keras.applications' logits of RGB images normalised in caffe mode (it takes BGR)."""
    return np.asarray(net(rgb[..., ::-1], training=False))


def source_with_weights(
    depth: int, path, size: int, classes: int, seed: int, read_back: bool = False
) -> keras.Model:
    """keras.applications' network, randomised, saved to ``path`` (and, with ``read_back``,
    loaded back from it by Keras: the file has the layout keras.applications loads)."""
    build = getattr(keras.applications, f"ResNet{depth}")
    net = build(
        weights=None, input_shape=(size, size, 3), classes=classes, classifier_activation=None
    )
    randomize_keras(net, seed)
    _, x = images(2, size, "imagenet_caffe")
    logits = bgr_logits(net, x)
    kernel, bias = net.get_layer("predictions").get_weights()
    scale = 4.0 / np.abs(logits).max()
    net.get_layer("predictions").set_weights([kernel * scale, bias * scale])
    save_keras2_h5(net, path)
    if not read_back:
        return net
    loaded = build(
        weights=str(path), input_shape=(size, size, 3), classes=classes, classifier_activation=None
    )
    for a, b in zip(loaded.get_weights(), net.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    return loaded


@pytest.mark.slow
def test_resnet50_h5_matches_keras_applications_at_224(tmp_path):
    path = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
    source = source_with_weights(50, path, 224, 1000, seed=50, read_back=True)
    pixels, x = images(3, 224, "imagenet_caffe")

    conversion = convert_checkpoint(path)
    assert conversion.source.source == "keras.applications ResNet50"
    assert conversion.model.name == "resnet50v1"
    assert conversion.model.get_layer("stage2_unit1_conv1").strides == (2, 2)  # the first 1×1
    assert conversion.model.get_layer("stem_bn").epsilon == 1.001e-5
    assert conversion.preprocessing == "imagenet_caffe"
    # Every array went in: kernels, BN parameters, and the biases folded into moving means.
    assert conversion.loaded.tensors == sum(len(layer.weights) for layer in source.layers)
    # keras-preact takes RGB pixels; keras.applications' caffe-mode BGR.
    assert_parity(keras_logits(conversion.model, pixels), bgr_logits(source, x))


@pytest.mark.parametrize("depth", [101, 152])
def test_deeper_networks_map_every_tensor_and_fold_the_epsilon(tmp_path, depth):
    """Through ``weights=`` into a model built with keras-preact's epsilon (1e-5): the difference
    to keras.applications' 1.001e-5 is folded into the moving variances."""
    path = tmp_path / f"resnet{depth}.h5"
    source = source_with_weights(depth, path, 64, 10, seed=depth)
    _, x = images(2, 64, "imagenet_caffe")
    model = getattr(kp, f"ResNet{depth}V1")(
        weights=path, input_shape=(64, 64, 3), classes=10, classifier_activation=None
    )
    assert model.get_layer("stem_bn").epsilon == 1e-5
    assert_parity(keras_logits(model, x), bgr_logits(source, x))


def test_weights_saved_by_keras_3_convert_too(tmp_path):
    """``save_weights`` of Keras 3 names arrays by layer class and position (``conv2d_12``): the
    file is read through keras.applications' own network."""
    build = keras.applications.ResNet50
    net = build(weights=None, input_shape=(64, 64, 3), classes=10, classifier_activation=None)
    randomize_keras(net, seed=3)
    _, x = images(2, 64, "imagenet_caffe")
    kernel, bias = net.get_layer("predictions").get_weights()
    scale = 4.0 / np.abs(bgr_logits(net, x)).max()
    net.get_layer("predictions").set_weights([kernel * scale, bias * scale])
    net.save_weights(tmp_path / "resnet50.weights.h5")
    model = kp.ResNet50V1(
        weights=tmp_path / "resnet50.weights.h5",
        input_shape=(64, 64, 3),
        classes=10,
        classifier_activation=None,
    )
    assert_parity(keras_logits(model, x), bgr_logits(net, x))
