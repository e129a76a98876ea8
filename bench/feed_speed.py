"""Images/s of decoding and augmenting JPEG files on the CPU: keras-preact's tf.data image feed
against torchvision's ``ImageFolder`` and ``DataLoader``, with the same augmentation and the same
number of workers.

Both read the training images of the folder `bench.jpeg_folder` writes and produce shuffled batches of
float32 raw pixels, augmented with the v1 paper's recipe (shorter side random in [256, 480], random
224x224 crop, horizontal flip, AlexNet's PCA lighting):

* keras-preact: ``training.data.images.feed.train_batches`` over the scanned folder
  (``training.data.images.folder.scan``) with ``Augment.make(224, "scale")``, as ``python -m
  training.images`` feeds it; NHWC batches, int32 labels.
* torchvision: ``ImageFolder`` (PIL decoding) with `bench.torch_images.paper_transform` in a
  ``DataLoader`` of ``workers`` worker processes; NCHW batches, int64 labels.

The same parallelism: the DataLoader's ``num_workers`` is ``workers``, and each of its worker
processes runs one image at a time on one thread (PyTorch sets one intra-op thread in its workers;
PIL decodes on one). The tf.data pipeline runs on a private thread pool of ``workers`` threads, one
op thread per image (``tf.data.Options.threading``: ``private_threadpool_size = workers``,
``max_intra_op_parallelism = 1``), and autotunes within a budget of ``workers`` cores.

Windows: every window starts a fresh iterator (new DataLoader workers, a new tf.data iterator) and
ends after ``steps`` batches, with the iterator's workers stopped; its images/s count from the
iterator's start, so both sides pay their start-up, and neither side's background workers decode
ahead while the other one is being timed. The first window is the warm-up and is discarded.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.turns import Gate

FEED_MODEL = "JPEG folder"
"""The ``model`` of the feed stage's records: what is fed, not a network."""


@dataclasses.dataclass(frozen=True)
class FeedSettings:
    """How the feed stage measures: one warm-up window, then ``repeats`` windows of ``steps``
    batches of ``batch`` images at crop ``image_size``, decoded by ``workers`` workers."""

    batch: int = 64
    workers: int = 2
    steps: int = 20
    repeats: int = 3
    image_size: int = 224


@dataclasses.dataclass
class FeedResult:
    """Median images/s over the windows, every window's images/s, and how it was measured."""

    img_s: float
    windows: list[float]
    details: dict[str, Any]


def _time_windows(start: Callable[[], Iterator[Any]], s: FeedSettings, gate: Gate) -> list[float]:
    """Seconds of every window but the warm-up: ``start()`` an iterator, take ``s.steps`` batches,
    drop the iterator (outside the clock, inside the turn)."""
    seconds = []
    for _ in range(1 + s.repeats):
        gate.before()
        begin = time.perf_counter()
        iterator = start()
        for _ in range(s.steps):
            next(iterator)
        elapsed = time.perf_counter() - begin
        # Dropped now, its workers stop: a DataLoader joins its worker processes (so that their
        # CPU time counts as this process's children, see bench.timing.ForeignLoad), tf.data
        # cancels its threads; neither decodes ahead while another contender is timed.
        del iterator
        gate.after(elapsed)
        seconds.append(elapsed)
    return seconds[1:]


def _result(seconds: list[float], s: FeedSettings, **details: Any) -> FeedResult:
    rates = [s.batch * s.steps / t for t in seconds]
    return FeedResult(float(np.median(rates)), [round(r, 2) for r in rates], details)


def keras_preact_feed(folder: Path, s: FeedSettings, gate: Gate) -> FeedResult:
    """keras-preact's tf.data feed of the folder's training images, bounded to ``s.workers``."""
    import tensorflow as tf

    from training.data.images import feed as feed_images
    from training.data.images.folder import scan

    source = scan(folder).train
    augment = feed_images.Augment.make(s.image_size, "scale", lighting=True)
    plan = feed_images.ImagePlan(
        global_batch=s.batch,
        steps=source.count // s.batch,
        seed=0,
        augment=augment,
        image_size=s.image_size,
    )
    options = tf.data.Options()
    options.threading.private_threadpool_size = s.workers
    options.threading.max_intra_op_parallelism = 1
    options.autotune.cpu_budget = s.workers
    dataset = feed_images.train_batches(source, plan).with_options(options)
    seconds = _time_windows(lambda: iter(dataset), s, gate)
    return _result(
        seconds,
        s,
        pipeline="training.data.images.feed.train_batches (tf.data), Augment.make(scale)",
        parallelism=f"private thread pool of {s.workers}, 1 op thread per image",
        scale_range=list(augment.scale_range),
        images=source.count,
        **gate.details(),
    )


def torchvision_feed(folder: Path, s: FeedSettings, gate: Gate) -> FeedResult:
    """torchvision's ImageFolder in a DataLoader of ``s.workers`` worker processes."""
    import torch

    from bench import torch_images
    from training.data.images.augmentation import scale_range

    loader = torch_images.image_loader(folder / "train", s.image_size, s.batch, s.workers)
    seconds = _time_windows(lambda: iter(loader), s, gate)
    return _result(
        seconds,
        s,
        pipeline="torchvision ImageFolder (PIL) + DataLoader, transforms.v2 + PCA lighting",
        parallelism=f"DataLoader num_workers={s.workers} (1 thread each)",
        scale_range=list(scale_range(s.image_size)),
        images=len(loader.dataset),
        torch_threads=torch.get_num_threads(),
        **gate.details(),
    )


MEASURES = {"keras-preact": keras_preact_feed, "pytorch": torchvision_feed}
