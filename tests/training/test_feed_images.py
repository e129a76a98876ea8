"""training.data.images.feed: the image feed's contract (order and augmentation keyed by seed, epoch and
image; resumable at any batch) and each augmentation's numbers, on real image files."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from image_helpers import write_folder

from training.data.images import feed as feed_images
from training.data.images.feed import Augment, FileImages, ImagePlan
from training.data.images.folder import scan
from training.evaluation import protocols


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> FileImages:
    found = scan(write_folder(tmp_path_factory.mktemp("images") / "photos"))
    return found.train


def _batches(source, count, **plan):
    fields = dict(global_batch=10, steps=6, seed=3, augment=Augment.make(32), image_size=32)
    fields.update(plan)
    ds = feed_images.train_batches(source, ImagePlan(**fields))
    return [(x.numpy(), y.numpy()) for x, y in ds.take(count)]


def test_batches_are_keyed_by_seed_epoch_and_image_and_resume_at_any_batch(source):
    first = _batches(source, 14)
    assert first[0][0].shape == (10, 32, 32, 3) and first[0][0].dtype == np.float32
    assert first[0][1].dtype == np.int32
    again = _batches(source, 14)
    for (x, y), (x2, y2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    # Each epoch is a shuffle of all 60 images: every class 6 times, another order each epoch.
    for epoch in (first[:6], first[6:12]):
        labels = np.concatenate([y for _, y in epoch])
        assert np.bincount(labels).tolist() == [6] * 10
    assert not np.array_equal(first[0][1], first[6][1])
    # A run resumed in epoch 2 after 2 batches sees exactly what the uninterrupted run saw.
    resumed = _batches(source, 2, start_epoch=1, skip=2)
    for (x, y), (x2, y2) in zip(resumed, first[8:10], strict=True):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    other = _batches(source, 1, seed=4)
    assert not np.array_equal(other[0][0], first[0][0])
    one_hot = _batches(source, 1, classes=10)
    np.testing.assert_array_equal(one_hot[0][1], np.eye(10)[first[0][1]])


def test_scale_windows_cover_the_papers_range(source):
    # Shorter side resized to R in [256, 480] (at crop 224) and a 224 crop: in the original image
    # the crop covers 224 * short / R pixels.
    augment = Augment.make(224)
    assert augment.scale_range == (256, 480)
    assert Augment.make(32).scale_range == (37, 69)
    shape = tf.constant([300, 500])
    sides, tops, lefts = [], [], []
    windows = tf.data.Dataset.range(300).map(
        lambda k: feed_images.scale_window(shape, tf.stack([tf.constant(7, tf.int64), k]), augment)
    )
    for top, left, h, w in windows.as_numpy_iterator():
        assert h == w and 0 <= top <= 300 - h and 0 <= left <= 500 - w
        sides.append(h)
        tops.append(top)
        lefts.append(left)
    assert round(224 * 300 / 480) <= min(sides) < 150 < max(sides) <= round(224 * 300 / 256)
    assert max(tops) > 0 and max(lefts) > 150  # positions spread over the image


def test_inception_windows_keep_area_and_aspect_ratio_in_range():
    shape = tf.constant([200, 300])
    areas, ratios = [], []
    windows = tf.data.Dataset.range(200).map(
        lambda k: feed_images.inception_window(shape, tf.stack([tf.constant(1, tf.int64), k]))
    )
    for top, left, h, w in windows.as_numpy_iterator():
        assert top + h <= 200 and left + w <= 300
        areas.append(h * w / 60000)
        ratios.append(w / h)
    whole = [a == 1.0 for a in areas]
    kept = [(a, r) for a, r, full in zip(areas, ratios, whole, strict=True) if not full]
    assert len(kept) > 150
    assert all(0.07 <= a <= 1.0 and 0.7 <= r <= 1.4 for a, r in kept)
    assert min(a for a, _ in kept) < 0.2 and max(a for a, _ in kept) > 0.6


def test_pca_lighting_has_alexnets_covariance():
    draws = tf.data.Dataset.range(3000).map(
        lambda k: feed_images.lighting_noise(tf.stack([tf.constant(2, tf.int64), k]), 0.1)
    )
    noise = np.stack(list(draws.as_numpy_iterator()))
    vectors = np.asarray(feed_images.PCA_EIGENVECTORS)
    coefficients = noise @ np.linalg.inv(vectors).T / 255.0  # alpha_i * lambda_i
    expected = 0.1 * np.asarray(feed_images.PCA_EIGENVALUES)
    np.testing.assert_allclose(coefficients.std(axis=0), expected, rtol=0.08)
    assert np.abs(coefficients.mean(axis=0)).max() < 0.1 * expected.max()


def test_only_the_window_of_a_jpeg_is_decoded_and_it_is_the_same_pixels(source):
    jpeg = next(f for f in source.files if f.endswith(".jpg"))
    data = tf.io.read_file(jpeg)
    full = feed_images.decode(data).numpy().astype(int)
    window = tf.constant([5, 7, 20, 30])
    part = feed_images.decode_window(data, window).numpy().astype(int)
    assert part.shape == (20, 30, 3)
    assert np.abs(part - full[5:25, 7:37]).max() <= 2  # libjpeg's upsampling at the window edge


def test_training_views_and_the_evaluation_view(source):
    data = tf.io.read_file(source.files[0])
    key = tf.constant([0, 1], tf.int64)
    for kind in ("scale", "inception"):
        view = feed_images.train_image(data, key, Augment.make(32, kind)).numpy()
        assert view.shape == (32, 32, 3) and np.isfinite(view).all()
    plain = feed_images.train_image(data, key, Augment.make(32, "none")).numpy()
    evaluation = feed_images.eval_image(data, 32).numpy()
    np.testing.assert_array_equal(plain, evaluation)
    np.testing.assert_array_equal(
        evaluation, protocols.center(feed_images.decode(data), 32)[0].numpy()
    )
    # Without colour augmentation every value is a resampled pixel in [0, 255].
    flat = feed_images.train_image(data, key, Augment.make(32, lighting=False)).numpy()
    assert flat.min() >= 0 and flat.max() <= 255
    with pytest.raises(ValueError, match=r"unknown augmentation 'crop': choose one of .*inception"):
        Augment.make(32, "crop")


def test_evaluation_feed_is_every_image_in_order(source):
    batches = list(feed_images.eval_batches(source, 32, 16).as_numpy_iterator())
    assert [len(y) for _, y in batches] == [16, 16, 16, 12]
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), source.labels)
    again = list(feed_images.eval_batches(source, 32, 16).as_numpy_iterator())
    np.testing.assert_array_equal(batches[1][0], again[1][0])


def test_each_worker_decodes_only_its_share_of_the_same_global_batches(source):
    whole = _batches(source, 3, global_batch=10)
    shares = []
    for worker in (0, 1):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=worker, num_replicas_in_sync=2
        )
        shares.append(_batches(source, 3, global_batch=10, input_context=context))
    for step, (x, y) in enumerate(whole):
        assert shares[0][step][0].shape == (5, 32, 32, 3)
        np.testing.assert_array_equal(np.concatenate([s[step][0] for s in shares]), x)
        np.testing.assert_array_equal(np.concatenate([s[step][1] for s in shares]), y)
