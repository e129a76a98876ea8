"""training.evaluation.protocols: every crop of the papers' testing is the window it should be (an image whose
pixels encode their own coordinates), the multi-scale sizes, the fully-convolutional network, and
the top-1/top-5 errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_preact
from training.evaluation import protocols


def coordinate_image(height: int, width: int) -> np.ndarray:
    """float32 (H, W, 3): channel 0 is the row, channel 1 the column, channel 2 row * W + column."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([rows, cols, rows * width + cols], axis=-1).astype(np.float32)


def window(image: np.ndarray, top: int, left: int, size: int, flip: bool) -> np.ndarray:
    out = image[top : top + size, left : left + size]
    return out[:, ::-1] if flip else out


@pytest.mark.parametrize(("height", "width"), [(256, 320), (301, 256)])
def test_ten_crops_are_the_four_corners_the_centre_and_their_flips(height, width):
    # Shorter side 256 = the protocol's resize for a 224 crop: no resampling, so each crop must
    # be exactly a window of the image.
    image = coordinate_image(height, width)
    crops = protocols.ten_crops(tf.constant(image), 224).numpy()
    assert crops.shape == (10, 224, 224, 3)
    bottom, right = height - 224, width - 224
    corners = [(0, 0), (0, right), (bottom, 0), (bottom, right), (bottom // 2, right // 2)]
    for i, (top, left) in enumerate(corners * 2):
        expected = window(image, top, left, 224, flip=i >= 5)
        np.testing.assert_array_equal(crops[i], expected, err_msg=f"crop {i}")
    # Every one of the ten is a different view (the test could tell any two apart).
    ids = {crops[i, :, :, 2].tobytes() for i in range(10)}
    assert len(ids) == 10


def test_centre_crop_and_the_resize_before_it():
    image = coordinate_image(256, 300)
    view = protocols.center(tf.constant(image), 224).numpy()
    np.testing.assert_array_equal(view[0], window(image, 16, 38, 224, flip=False))
    # Another size: the shorter side goes to 256 * crop / 224 (37 for a 32 crop), aspect kept.
    small = protocols.resize_shorter(tf.zeros([100, 150, 3], tf.uint8), 37)
    assert small.shape == (37, 56, 3) and small.dtype == tf.float32
    tall = protocols.resize_shorter(tf.zeros([90, 60, 3]), protocols.scaled(256, 224))
    assert tall.shape == (384, 256, 3)
    assert protocols.center(tf.zeros([50, 80, 3]), 32).shape == (1, 32, 32, 3)


def test_multiscale_views_are_the_whole_image_at_each_scale_and_its_flip():
    image = coordinate_image(224, 280)
    per_scale = protocols.scale_views(tf.constant(image), 224)
    assert [tuple(v.shape) for v in per_scale] == [
        (2, 224, 280, 3),
        (2, 256, 320, 3),
        (2, 384, 480, 3),
        (2, 480, 600, 3),
        (2, 640, 800, 3),
    ]
    first = per_scale[0].numpy()
    np.testing.assert_array_equal(first[0], image)  # shorter side 224 already: the image itself
    np.testing.assert_array_equal(first[1], image[:, ::-1])
    assert [protocols.scaled(s, 32) for s in protocols.SCALES] == [32, 37, 55, 69, 91]


def test_fully_convolutional_network_is_the_same_network_on_any_size():
    keras.utils.set_random_seed(1)
    model = keras_preact.ResNet(
        8, "v1", input_shape=(32, 32, 3), classes=5, preprocessing="imagenet"
    )
    network = protocols.fully_convolutional(model)
    assert tuple(network.inputs[0].shape) == (None, None, None, 3)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(network.predict_on_batch(x), model.predict_on_batch(x), atol=1e-6)
    bigger = network.predict_on_batch(np.random.default_rng(1).uniform(0, 255, (2, 48, 72, 3)))
    assert bigger.shape == (2, 5) and np.allclose(bigger.sum(axis=1), 1, atol=1e-5)


def test_top1_and_top5_errors_overall_and_per_class():
    probs = np.array(
        [
            [0.5, 0.2, 0.1, 0.1, 0.05, 0.05],  # label 0: top-1 hit
            [0.5, 0.2, 0.1, 0.1, 0.06, 0.04],  # label 4: top-5 hit only
            [0.5, 0.2, 0.1, 0.1, 0.06, 0.04],  # label 5: miss
            [0.1, 0.6, 0.1, 0.1, 0.05, 0.05],  # label 1: hit
        ]
    )
    result = protocols.errors(probs, np.array([0, 4, 5, 1]), names=list("abcdef"))
    assert result["images"] == 4
    assert result["top1_error"] == 0.5 and result["top5_error"] == 0.25
    assert result["per_class"] == {
        "a": {"images": 1, "top1_error": 0.0, "top5_error": 0.0},
        "b": {"images": 1, "top1_error": 0.0, "top5_error": 0.0},
        "e": {"images": 1, "top1_error": 1.0, "top5_error": 0.0},
        "f": {"images": 1, "top1_error": 1.0, "top5_error": 1.0},
    }
