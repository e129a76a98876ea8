"""The Keras callbacks of a run besides the learning rate's. Keras' ``CSVLogger`` is used as it is;
``TensorBoard``, ``TerminateOnNaN`` and the progress bar are Keras' own, adapted below. Two replace
Keras' own:

* ``Backup`` replaces ``keras.callbacks.BackupAndRestore``, which (Keras 3.15) restores a mid-epoch
  backup only to its epoch start (replaying batches already trained) and rewrites its files in place
  (a kill during a save can leave them inconsistent). ``Backup`` names each state by its global step,
  writes it atomically, keeps the previous one and stores the schedule's state.
* ``SaveModels`` writes ``best.keras`` and ``last.keras`` atomically and carries the best value over
  from earlier sessions (``ModelCheckpoint`` writes in place and forgets it on a restart).

All of them allow their batch-end hooks to run late (``async_safe``), so Keras on JAX need not wait
for every step.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_preact.command_line import UserError
from training.run.run_folder import write_json

_STATE = re.compile(r"^step-(\d{9})\.json$")


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the resume state from before it is kept."""

    def __init__(self, what: str, hint: str = ""):
        super().__init__(f"training diverged: {what} (nothing was saved after it). {hint}".strip())


class Backup(keras.callbacks.Callback):
    """Save the training state every ``every`` steps (as the next step begins: batch-end hooks may
    run late) and after each epoch's other callbacks: ``step-<global step>.weights.h5`` (model and
    optimizer), then ``step-<global step>.json`` (``{"step": ..., **extra(step)}``), each atomically;
    the ``keep`` newest are kept. Non-finite weights are never saved (``TrainingDiverged``)."""

    async_safe = True

    def __init__(
        self,
        directory: Path,
        *,
        steps_per_epoch: int,
        every: int,
        step: int = 0,
        extra: Callable[[int], dict[str, Any]] | None = None,
        keep: int = 2,
        hint: str = "",
    ):
        super().__init__()
        self.directory, self.steps_per_epoch, self.every = Path(directory), steps_per_epoch, every
        self.step, self.keep, self.hint = step, keep, hint
        self.extra = extra or (lambda step: {})
        self._saved = step  # the state a session starts from exists already

    def on_train_batch_begin(self, batch, logs=None):
        due = self.every and self.step % self.every == 0 and self.step % self.steps_per_epoch
        if due and self.step != self._saved:
            self.save()
        self.step += 1  # the step about to run

    def on_epoch_end(self, epoch, logs=None):
        self.save()

    def save(self) -> None:
        if not all_finite(self.model):
            raise TrainingDiverged(
                f"the weights were NaN or infinite after step {self.step}", self.hint
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        meta = self.directory / f"step-{self.step:09d}.json"
        _save_atomically(self.model.save_weights, _weights_of(meta))
        write_json(meta, {"step": self.step, **self.extra(self.step)})
        self._saved = self.step
        for old in list_states(self.directory)[self.keep :]:
            old.unlink(missing_ok=True)
            _weights_of(old).unlink(missing_ok=True)


def _weights_of(meta: Path) -> Path:
    return meta.with_name(meta.name.replace(".json", ".weights.h5"))


def _save_atomically(save: Callable[..., None], path: Path) -> None:
    """``save(path)`` through a temporary file with the same suffix (Keras checks it)."""
    tmp = path.with_name(f".tmp-{path.name}")
    save(tmp, overwrite=True)
    os.replace(tmp, path)


def all_finite(model: keras.Model) -> bool:
    """Whether every weight of ``model`` (batch-norm statistics included) is finite."""
    return all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in model.weights)


def list_states(directory: Path) -> list[Path]:
    """The metadata files of the complete states in ``directory``, newest first."""
    if not directory.is_dir():
        return []
    states = [p for p in directory.iterdir() if _STATE.match(p.name)]
    return sorted(states, key=lambda p: p.name, reverse=True)


def restore(directory: Path, model: keras.Model) -> dict[str, Any] | None:
    """Load the newest readable state into ``model`` (compiled, in the strategy scope) and return its
    metadata (``None``: no state; ``UserError``: none readable)."""
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    if directory.is_dir():  # what a session killed in the middle of a save left behind
        for leftover in directory.glob(".tmp-*"):
            leftover.unlink(missing_ok=True)
    problems = []
    for meta in list_states(directory):
        weights = _weights_of(meta)
        try:
            state = json.loads(meta.read_text())
            model.load_weights(weights)
        except (OSError, ValueError, KeyError) as e:
            problems.append(f"{weights.name}: {e}")
            continue
        return state
    if problems:
        raise UserError(f"no readable resume state in {directory} ({'; '.join(problems)})")
    return None


class SaveModels(keras.callbacks.Callback):
    """Write ``last.keras`` after every epoch and ``best.keras`` whenever the test accuracy
    (``val_accuracy``) beats ``best_accuracy`` (carried over from earlier sessions), atomically."""

    def __init__(
        self,
        best: Path,
        last: Path,
        *,
        best_accuracy: float | None = None,
        best_epoch: int | None = None,
    ):
        super().__init__()
        self.best, self.last = Path(best), Path(last)
        self.best_accuracy, self.best_epoch = best_accuracy, best_epoch

    def state(self) -> dict[str, Any]:
        return {"best_accuracy": self.best_accuracy, "best_epoch": self.best_epoch}

    def on_epoch_end(self, epoch, logs=None):
        _save_atomically(self.model.save, self.last)
        accuracy = (logs or {}).get("val_accuracy")
        if accuracy is not None and (self.best_accuracy is None or accuracy > self.best_accuracy):
            self.best_accuracy, self.best_epoch = float(accuracy), epoch
            _save_atomically(self.model.save, self.best)


class EpochMeans(keras.callbacks.Callback):
    """Log an epoch's training means over the whole epoch across a resume mid-epoch (Keras' cover
    only its ``fit`` call's batches): ``state(step)``, given back as ``carried``, is merged into the
    resumed epoch's logs, weighted by batches (put this callback first)."""

    async_safe = True

    def __init__(self, steps_per_epoch: int, carried: dict[str, Any] | None = None):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.carried = carried

    def state(self, step: int) -> dict[str, Any] | None:
        """``{"epoch", "batches", "means"}`` after ``step`` complete steps (``None`` at an epoch end)."""
        epoch, batches = divmod(step, self.steps_per_epoch)
        if not batches:
            return None
        means = {
            name: float(keras.ops.convert_to_numpy(value))
            for name, value in self.model.get_metrics_result().items()
        }
        return {"epoch": epoch, "batches": batches, "means": self._merged(epoch, means, batches)}

    def _merged(self, epoch: int, means: dict[str, float], batches: int) -> dict[str, float]:
        carried = self.carried
        if not carried or carried["epoch"] != epoch:
            return means
        before = carried["batches"]
        return {
            name: (before * carried["means"][name] + (batches - before) * value) / batches
            if name in carried["means"]
            else value
            for name, value in means.items()
        }

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or not self.carried or self.carried["epoch"] != epoch:
            return
        trained = {name: float(logs[name]) for name in self.carried["means"] if name in logs}
        logs.update(self._merged(epoch, trained, self.steps_per_epoch))


class EpochStats(keras.callbacks.Callback):
    """Add ``lr``, ``train_seconds`` and ``images_per_second`` to each epoch's logs (put it before
    the callbacks that write them); with ``print_line``, print one line per epoch."""

    def __init__(self, *, global_batch: int, epochs: int, print_line: bool, stream=None):
        super().__init__()
        self.global_batch, self.epochs, self.print_line = global_batch, epochs, print_line
        self.stream = stream or sys.stdout
        self._start = self._train_end = 0.0
        self._batches = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._train_end, self._batches = time.perf_counter(), 0.0, 0

    # Counted at a batch's start: a batch-end hook would make Keras on JAX wait for every step.
    def on_train_batch_begin(self, batch, logs=None):
        self._batches += 1

    def on_test_begin(self, logs=None):
        self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        now = time.perf_counter()
        seconds = (self._train_end or now) - self._start
        logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        logs["train_seconds"] = seconds
        logs["images_per_second"] = self._batches * self.global_batch / max(seconds, 1e-9)
        if self.print_line:
            self.stream.write(format_epoch(epoch, self.epochs, logs, now - self._start) + "\n")
            self.stream.flush()


def format_epoch(epoch: int, epochs: int, logs: dict[str, Any], seconds: float) -> str:
    """``epoch 3/30  loss 1.234  train err 45.20%  test loss 1.502  test err 50.33%  lr 0.05  4.1s``."""
    parts = [f"epoch {epoch + 1}/{epochs}"]
    if "loss" in logs:
        parts.append(f"loss {logs['loss']:.4f}")
    if "accuracy" in logs:
        parts.append(f"train err {100 * (1 - logs['accuracy']):.2f}%")
    if "val_loss" in logs:
        parts.append(f"test loss {logs['val_loss']:.4f}")
    if "val_accuracy" in logs:
        parts.append(f"test err {100 * (1 - logs['val_accuracy']):.2f}%")
    parts.append(f"lr {logs.get('lr', float('nan')):.4g}")
    parts.append(f"{seconds:.1f}s  {logs.get('images_per_second', 0):.0f} img/s")
    return "  ".join(parts)


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """Keras' ``TerminateOnNaN`` raising ``TrainingDiverged`` (late, maybe: ``Backup`` saves no NaN)."""

    async_safe = True

    def __init__(self, hint: str = ""):
        super().__init__(raise_error=True)
        self.hint = hint
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        try:
            super().on_batch_end(batch, logs)
        except RuntimeError:
            loss = (logs or {}).get("loss")
            where = f"at epoch {self.epoch + 1}, batch {batch + 1}"
            raise TrainingDiverged(f"the loss became {loss} {where}", self.hint) from None


class ProgressBar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, updated safely from Keras' batch-end threads (replaces Keras' own)."""

    async_safe = True

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()

    def on_train_batch_end(self, batch, logs=None):
        with self._lock:
            if batch + 1 > self.seen:
                super().on_train_batch_end(batch, logs)


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """Keras' ``TensorBoard`` writing epoch summaries only, with no batch-end hook (see EpochStats)."""

    async_safe = True

    def __init__(self, log_dir: Path):
        super().__init__(
            log_dir=str(log_dir), write_graph=False, update_freq="epoch", profile_batch=0
        )

    def on_train_batch_end(self, batch, logs=None):
        pass
