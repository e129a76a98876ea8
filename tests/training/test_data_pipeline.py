"""The two feeds (training.data.cifar.feed_tf, tf.data; training.data.cifar.feed_numpy, Keras PyDataset) and
training.data.batches.steps_per_epoch, on the embedded sample's images.

Both feeds are held to the same contract by the same tests. The training labels passed in are the
images' indices, so every yielded image can be traced back to the original it was made from.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from numpy.lib.stride_tricks import sliding_window_view

from keras_preact.command_line import UserError
from keras_preact.datasets import load_sample
from training.data.batches import ArrayPlan, steps_per_epoch
from training.data.cifar import feed_numpy, feed_tf

SAMPLE = load_sample()
X = SAMPLE.x_train
IDS = np.arange(len(X))
BATCH = 128
STEPS = len(X) // BATCH  # 7: 104 images are left over each epoch


FEEDS = {"tf.data": feed_tf, "numpy": feed_numpy}


@pytest.fixture(params=list(FEEDS))
def feed(request):
    """Each test runs once per feed."""
    return FEEDS[request.param]


def train(feed, x, y, batch, **plan):
    """``feed``'s training feed of ``ArrayPlan.make(x, y, batch, **plan)``."""
    return feed.train_batches(ArrayPlan.make(x, y, batch, **plan))


def take(ds, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first ``n`` batches (fewer if the feed ends) as numpy arrays, read the way Keras reads
    each kind of feed."""
    if isinstance(ds, tf.data.Dataset):
        return [(x.numpy(), y.numpy()) for x, y in ds.take(n)]
    count = n if ds.num_batches is None else min(n, ds.num_batches)
    return [ds[i] for i in range(count)]


def same(a, b) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(xa, xb) and np.array_equal(ya, yb)
        for (xa, ya), (xb, yb) in zip(a, b, strict=True)
    )


def test_batches_have_the_contract_shapes_dtypes_and_ranges(feed):
    ds = train(feed, X, SAMPLE.y_train, BATCH, seed=0)
    if feed is feed_tf:
        assert ds.element_spec == (
            tf.TensorSpec((BATCH, 32, 32, 3), tf.float32),
            tf.TensorSpec((BATCH,), tf.int32),
        )
    for x, y in take(ds, 2):
        assert x.shape == (BATCH, 32, 32, 3) and x.dtype == np.float32
        assert y.shape == (BATCH,) and y.dtype == np.int32
        assert x.min() >= 0 and x.max() <= 255 and x.max() > 200  # raw pixels, not standardised
        assert set(np.unique(y)) <= set(range(10))


def test_only_full_batches_and_every_epoch_is_a_fresh_shuffle_without_repeats(feed):
    batches = take(train(feed, X, IDS, BATCH, seed=1, augment=False), 3 * STEPS)
    assert all(x.shape[0] == BATCH and y.shape == (BATCH,) for x, y in batches)
    epochs = [
        np.concatenate([y for _, y in batches[e * STEPS : (e + 1) * STEPS]]) for e in range(3)
    ]
    for ids in epochs:
        assert len(np.unique(ids)) == STEPS * BATCH  # no image twice in an epoch
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    assert len(np.unique(np.concatenate(epochs))) > STEPS * BATCH  # the dropped remainder changes
    for x, y in batches:  # without augmentation the images are the originals
        np.testing.assert_array_equal(x, X[y].astype(np.float32))


def test_same_seed_same_batches_other_seed_other_batches(feed):
    a = take(train(feed, X, IDS, BATCH, seed=7), 2 * STEPS)
    b = take(train(feed, X, IDS, BATCH, seed=7), 2 * STEPS)
    c = take(train(feed, X, IDS, BATCH, seed=8), 2 * STEPS)
    assert same(a, b)
    assert not np.array_equal(a[0][1], c[0][1])
    assert not np.array_equal(a[0][1], a[STEPS][1])  # epoch 1 is not epoch 0 again


@pytest.mark.parametrize("start_epoch", [1, 2])
def test_resuming_at_an_epoch_reproduces_the_uninterrupted_run(feed, start_epoch):
    full = take(train(feed, X, IDS, BATCH, seed=3), 3 * STEPS)
    resumed = take(
        train(feed, X, IDS, BATCH, seed=3, start_epoch=start_epoch),
        (3 - start_epoch) * STEPS,
    )
    assert same(resumed, full[start_epoch * STEPS :])


def test_resuming_inside_an_epoch_reproduces_the_uninterrupted_run(feed):
    full = take(train(feed, X, IDS, BATCH, seed=3), 3 * STEPS)
    resumed = take(train(feed, X, IDS, BATCH, seed=3, start_epoch=1, skip=3), 2 * STEPS - 3)
    assert same(resumed, full[STEPS + 3 :])


def test_one_hot_labels_for_label_smoothing(feed):
    [(_, plain)] = take(train(feed, X, SAMPLE.y_train, BATCH, seed=4), 1)
    [(_, hot)] = take(train(feed, X, SAMPLE.y_train, BATCH, seed=4, classes=10), 1)
    assert hot.dtype == np.float32 and hot.shape == (BATCH, 10)
    np.testing.assert_array_equal(hot, np.eye(10, dtype=np.float32)[plain])
    batches = take(feed.eval_batches(SAMPLE.x_test, SAMPLE.y_test, BATCH, classes=10), 10)
    hot = np.concatenate([y for _, y in batches])
    np.testing.assert_array_equal(hot, np.eye(10, dtype=np.float32)[SAMPLE.y_test])


def test_numpy_feed_batches_do_not_depend_on_the_order_they_are_asked_for():
    """Batches computed ahead on the feed's threads, asked for out of order (as after a restarted
    iterator) or on another feed object are the same arrays."""
    ds = train(feed_numpy, X, IDS, BATCH, seed=9)
    other = train(feed_numpy, X, IDS, BATCH, seed=9)
    for i in (5, 0, 1, 2, 12, 3):
        x, y = ds[i]
        ox, oy = other.compute(i)
        np.testing.assert_array_equal(x, ox)
        np.testing.assert_array_equal(y, oy)
    assert ds.position(12) == (1, 5) and other.position(0) == (0, 0)


def _transforms(padded: np.ndarray, image: np.ndarray) -> list[tuple[int, int, bool]]:
    """Every (top, left, flipped) whose crop of ``padded`` is exactly ``image``."""
    windows = sliding_window_view(padded, (32, 32), axis=(0, 1))  # (9, 9, 3, 32, 32)
    target = image.transpose(2, 0, 1)
    found = []
    for flipped, candidate in ((False, target), (True, target[:, :, ::-1])):
        hits = np.argwhere((windows == candidate).all(axis=(2, 3, 4)))
        found += [(int(t), int(left), flipped) for t, left in hits]
    return found


def test_augmentation_is_a_4_pixel_pad_random_crop_and_flip_of_the_original(feed):
    fill = (X.astype(np.float64).sum(axis=(0, 1, 2)) / (X.size // 3)).astype(np.float32)
    seen = []
    for x, ids in take(train(feed, X, IDS, BATCH, seed=11), 3):
        for image, i in zip(x, ids, strict=True):
            padded = np.pad(X[i].astype(np.float32), ((4, 4), (4, 4), (0, 0)))
            padded[:4], padded[-4:], padded[:, :4], padded[:, -4:] = fill, fill, fill, fill
            found = _transforms(padded, image)
            assert found, f"image {i} is not a crop of its padded original"
            seen.append(found[0])
    tops, lefts, flips = zip(*seen, strict=True)
    assert set(tops) == set(range(9)) and set(lefts) == set(range(9))  # every offset occurs
    assert 0.35 < np.mean(flips) < 0.65  # about half flipped
    assert sum(t == 4 and left == 4 for t, left, _ in seen) < 0.1 * len(seen)  # rarely uncropped


def test_augmentation_of_an_epoch_differs_from_the_next(feed):
    a, b = (
        take(train(feed, X, np.zeros_like(IDS), len(X), seed=5, start_epoch=e), 1)[0][0]
        for e in (0, 1)
    )
    assert not np.array_equal(a, b)


def test_without_a_seed_batches_are_valid_but_not_repeated(feed):
    a = take(train(feed, X, IDS, BATCH, seed=None), 1)[0]
    b = take(train(feed, X, IDS, BATCH, seed=None), 1)[0]
    assert a[0].shape == (BATCH, 32, 32, 3) and len(np.unique(a[1])) == BATCH
    assert not np.array_equal(a[1], b[1])


def test_eval_dataset_is_ordered_complete_float32_and_cached(feed):
    ds = feed.eval_batches(SAMPLE.x_test, SAMPLE.y_test, BATCH)
    for _ in range(2):
        batches = take(ds, 10)
        assert [len(y) for _, y in batches] == [128, 128, 44]
        x = np.concatenate([b[0] for b in batches])
        y = np.concatenate([b[1] for b in batches])
        assert x.dtype == np.float32 and y.dtype == np.int32
        np.testing.assert_array_equal(x, SAMPLE.x_test.astype(np.float32))
        np.testing.assert_array_equal(y, SAMPLE.y_test)


def test_steps_per_epoch():
    assert steps_per_epoch(1000, 128) == 7
    assert steps_per_epoch(50_000, 128) == 390
    assert steps_per_epoch(256, 128) == 2
    with pytest.raises(
        UserError, match="batch size 2000 is larger than the 1000 training examples"
    ):
        steps_per_epoch(1000, 2000)
    with pytest.raises(UserError, match="at least 1"):
        steps_per_epoch(1000, 0)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((X, IDS, 1001), {"seed": 0}, "larger than the 1000 training examples"),
        ((X, IDS, 0), {"seed": 0}, "at least 1"),
        ((X.astype(np.float32), IDS, 8), {"seed": 0}, "must be uint8 raw pixels"),
        ((X, IDS[:10], 8), {"seed": 0}, r"expected images \(N, H, W, C\) and labels \(N,\)"),
        ((X, IDS, 8), {"seed": 0, "start_epoch": -1}, "start epoch must be 0 or more"),
        ((X, IDS, 8), {"seed": 0, "skip": -1}, "batches to skip must be 0 or more, got -1"),
    ],
)
def test_bad_arguments(args, kwargs, message):
    with pytest.raises(UserError, match=message):
        ArrayPlan.make(*args, **kwargs)


def test_bad_evaluation_batch(feed):
    with pytest.raises(UserError, match="batch size must be at least 1, got 0"):
        feed.eval_batches(SAMPLE.x_test, SAMPLE.y_test, 0)


DISTRIBUTED = textwrap.dedent(
    """
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from training.data.batches import ArrayPlan
    from training.data.cifar import feed_tf
    from keras_preact.datasets import load_sample

    s = load_sample()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    ds = feed_tf.train_batches(ArrayPlan.make(s.x_train, s.y_train, 64, seed=5))
    x, y = next(iter(ds))
    dx, dy = next(iter(strategy.experimental_distribute_dataset(ds)))
    parts = strategy.experimental_local_results(dx)
    assert [p.shape[0] for p in parts] == [32, 32], [p.shape for p in parts]
    np.testing.assert_array_equal(np.concatenate(parts), x.numpy())
    np.testing.assert_array_equal(np.concatenate(strategy.experimental_local_results(dy)), y.numpy())
    with strategy.scope():
        model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255),
                                  keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(ds, steps_per_epoch=3, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    print("distributed ok")
    """
)


def test_works_under_mirrored_strategy_and_model_fit():
    """Split over two replicas, each gets its half of the same global batch; model.fit consumes it."""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", DISTRIBUTED], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and "distributed ok" in result.stdout, result.stderr[-3000:]
