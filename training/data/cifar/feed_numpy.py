"""CIFAR's NumPy feed, on JAX (and any backend but TensorFlow): Keras ``PyDataset``s, no TensorFlow.

Batch ``i`` is computed when Keras asks for it from NumPy generators seeded with ``(seed, epoch, 0)`` (the
epoch's shuffle) and ``(seed, epoch, step + 1)`` (the batch's crops and flips). A few threads compute the
next batches ahead (NumPy copies release the GIL); Keras' own enqueuer is not used: it drops the batches it
prefetched at every epoch end, which an endless feed would then skip.
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import keras
import numpy as np

from training.data.batches import PAD, ArrayPlan, check_batch, checked_split

PREFETCH = 4
"""Batches computed ahead of the one the model asked for."""


def _labels(labels: np.ndarray, classes: int | None) -> np.ndarray:
    return labels if classes is None else np.eye(classes, dtype=np.float32)[labels]


class TrainBatches(keras.utils.PyDataset):
    """An endless training feed (see ``ArrayPlan.make``); item ``i`` is the ``i``-th batch it yields."""

    def __init__(self, plan: ArrayPlan):
        super().__init__()
        self.plan = plan
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: dict[int, Future] = {}
        self._lock = threading.Lock()
        # Each epoch's shuffle, the last three kept (the batches ahead cross epoch ends).
        self._order = functools.lru_cache(maxsize=3)(self._shuffle)

    @property
    def num_batches(self) -> None:
        """None: the feed is endless (use ``fit(steps_per_epoch=...)``)."""
        return None

    def position(self, index: int) -> tuple[int, int]:
        """``(epoch, step)`` of the ``index``-th batch this feed yields."""
        return divmod(
            self.plan.start_epoch * self.plan.steps + self.plan.skip + index, self.plan.steps
        )

    def _shuffle(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.plan.seed, epoch, 0]).permutation(len(self.plan.x))

    def compute(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``index``-th batch, computed now."""
        plan = self.plan
        epoch, step = self.position(index)
        idx = self._order(epoch)[step * plan.global_batch : (step + 1) * plan.global_batch]
        images = plan.x[idx]
        if plan.augment:
            rng = np.random.default_rng([plan.seed, epoch, step + 1])
            out = _pad_crop_flip(images, rng, plan.fill)
        else:
            out = images.astype(np.float32)
        return out, _labels(plan.y[idx], plan.classes)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if self._pool is None:
                workers = max(1, min(PREFETCH, (os.cpu_count() or 1) - 1))
                self._pool = ThreadPoolExecutor(workers, thread_name_prefix="feed")
            for ahead in range(index, index + PREFETCH + 1):
                if ahead not in self._ahead:
                    self._ahead[ahead] = self._pool.submit(self.compute, ahead)
            future = self._ahead.pop(index)
            for stale in [i for i in self._ahead if i < index]:  # a restarted iterator
                self._ahead.pop(stale).cancel()
        return future.result()

    def __del__(self):
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def _pad_crop_flip(images: np.ndarray, rng: np.random.Generator, fill: np.ndarray) -> np.ndarray:
    """Pad uint8 ``images`` by ``PAD`` pixels of ``fill``, crop a random same-size window, flip half;
    each image is copied once, straight into its window of an output filled with ``fill``."""
    batch, height, width = images.shape[:3]
    span = 2 * PAD + 1
    # The same encoding as the tf.data feed: one draw per image for row, column and flip.
    draw = rng.integers(0, span * span * 2, size=batch)
    tops, lefts, flips = draw % span, (draw // span) % span, draw // (span * span)
    out = np.empty(images.shape, np.float32)
    out[...] = fill
    for i in range(batch):
        # The window [top, top + height) of the padded image holds image rows top - PAD, ...
        dy, dx = int(tops[i]) - PAD, int(lefts[i]) - PAD
        src = images[i, max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)]
        dst = out[i, max(-dy, 0) : height - max(dy, 0), max(-dx, 0) : width - max(dx, 0)]
        dst[...] = src
        if flips[i]:
            out[i] = out[i, :, ::-1]
    return out


class EvalBatches(keras.utils.PyDataset):
    """The split in order, in batches of ``batch`` (the last may be smaller)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch: int, *, classes: int | None = None):
        super().__init__()
        check_batch(batch)
        (self.x, self.y), self.batch, self.classes = checked_split(x, y), batch, classes

    @property
    def num_batches(self) -> int:
        """Batches per pass over the split (the last one may be smaller)."""
        return -(-len(self.x) // self.batch)

    def __len__(self) -> int:
        return self.num_batches

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < self.num_batches:
            raise IndexError(f"batch {index} of {self.num_batches}")
        part = slice(index * self.batch, (index + 1) * self.batch)
        return self.x[part].astype(np.float32), _labels(self.y[part], self.classes)


# The feeds, named as ``feed_tf``'s functions.
train_batches = TrainBatches
eval_batches = EvalBatches
