"""A small ``model.fit`` for ``MultiWorkerMirroredStrategy``, which Keras 3's own ``fit`` cannot drive
(keras-team/keras#20585: with TensorFlow 2.21 it cannot convert the distributed batch and reduces
scalar metrics along an axis they do not have).

Each replica runs the model's own ``train_step`` / ``test_step`` through ``strategy.run``, the logs
are averaged over all workers (what ``fit`` does on one machine), and the same callbacks are driven
through ``keras.callbacks.CallbackList``, so outputs, backups and logs are those of a ``fit`` run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf


def _mean_logs(strategy: tf.distribute.Strategy, per_replica: dict[str, Any]) -> dict[str, Any]:
    return {
        k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
        for k, v in per_replica.items()
    }


def fit(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    train_data: tf.data.Dataset | Callable[[tf.distribute.InputContext], tf.data.Dataset],
    *,
    epochs: int,
    steps_per_epoch: int,
    initial_epoch: int = 0,
    validation_data: tf.data.Dataset | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int = 1,
) -> keras.callbacks.History:
    """``model.fit`` with ``strategy``; ``train_data`` yields global batches, or is a function of
    each worker's ``tf.distribute.InputContext`` giving its per-replica batches."""
    history = keras.callbacks.History()
    callback_list = keras.callbacks.CallbackList(
        [*(callbacks or []), history],
        add_progbar=verbose != 0,
        verbose=verbose,
        epochs=epochs,
        steps=steps_per_epoch,
        model=model,
    )
    if callable(train_data):
        iterator = iter(strategy.distribute_datasets_from_function(train_data))
    else:
        iterator = iter(strategy.experimental_distribute_dataset(train_data))

    @tf.function
    def train_step(iterator):
        return _mean_logs(strategy, strategy.run(model.train_step, args=(next(iterator),)))

    @tf.function
    def test_step(batch):
        return _mean_logs(strategy, strategy.run(model.test_step, args=(batch,)))

    model.stop_training = False
    callback_list.on_train_begin()
    logs: dict[str, Any] = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        for step in range(steps_per_epoch):
            callback_list.on_train_batch_begin(step)
            logs = {k: float(v) for k, v in train_step(iterator).items()}
            callback_list.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        epoch_logs = dict(logs)
        if validation_data is not None:
            callback_list.on_test_begin()
            model.reset_metrics()
            val_logs: dict[str, Any] = {}
            for step, batch in enumerate(strategy.experimental_distribute_dataset(validation_data)):
                callback_list.on_test_batch_begin(step)
                val_logs = {k: float(v) for k, v in test_step(batch).items()}
                callback_list.on_test_batch_end(step, val_logs)
            callback_list.on_test_end(val_logs)
            epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
        callback_list.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return history
