"""Backup states, best/last models, the per-epoch line and the history file, on a tiny real model."""

from __future__ import annotations

import io
import json

import keras
import numpy as np
import pytest

from keras_preact.command_line import UserError
from training.run import callbacks as cb
from training.run import report


def _model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(
        keras.optimizers.SGD(0.1, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 4)).astype("float32"), rng.integers(0, 3, 40)


def test_backup_states_are_named_by_step_and_skip_epoch_boundaries(tmp_path):
    model = _model()
    x, y = _data()
    backup = cb.Backup(
        tmp_path, steps_per_epoch=4, every=2, extra=lambda step: {"note": "x", "at": step}
    )
    model.fit(x, y, batch_size=10, epochs=2, callbacks=[backup], verbose=0)
    # Steps 2, 6 (batch-level), 4, 8 (epoch ends; 4 and 8 are not saved twice); two kept.
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "step-000000006.json",
        "step-000000006.weights.h5",
        "step-000000008.json",
        "step-000000008.weights.h5",
    ]
    assert json.loads((tmp_path / "step-000000008.json").read_text()) == {
        "step": 8,
        "note": "x",
        "at": 8,
    }

    restored = _model(seed=1)
    state = cb.restore(tmp_path, restored)
    assert state == {"step": 8, "note": "x", "at": 8}
    for a, b in zip(model.get_weights(), restored.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(restored.optimizer.iterations) == 8


class _Recorder(keras.callbacks.Callback):
    """The weights after every step (a synchronous batch-end hook)."""

    def __init__(self):
        super().__init__()
        self.after_step: list[list[np.ndarray]] = []

    def on_train_batch_end(self, batch, logs=None):
        self.after_step.append(self.model.get_weights())


def test_backup_saves_the_weights_of_exactly_its_step(tmp_path):
    """A batch-level state is saved when the next step begins: it holds the weights after its step,
    not before it and not after the next."""
    model = _model()
    x, y = _data()
    recorder = _Recorder()
    backup = cb.Backup(tmp_path, steps_per_epoch=4, every=3, keep=10)
    model.fit(x, y, batch_size=10, epochs=2, callbacks=[recorder, backup], verbose=0)
    steps = [int(p.name[5:14]) for p in cb.list_states(tmp_path)]
    assert steps == [8, 6, 4, 3]
    for step in steps:
        restored = _model(seed=1)
        restored.optimizer.build(restored.trainable_variables)
        restored.load_weights(tmp_path / f"step-{step:09d}.weights.h5")
        for saved, expected in zip(
            restored.get_weights(), recorder.after_step[step - 1], strict=True
        ):
            np.testing.assert_array_equal(saved, expected)


def test_backup_never_writes_non_finite_weights(tmp_path):
    model = _model()
    backup = cb.Backup(tmp_path, steps_per_epoch=4, every=1, hint="Lower --lr.")
    backup.set_model(model)
    backup.on_epoch_end(0)
    kernel = model.layers[0].kernel
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    backup.step = 5
    with pytest.raises(cb.TrainingDiverged) as raised:
        backup.on_train_batch_begin(1)
    assert str(raised.value) == (
        "training diverged: the weights were NaN or infinite after step 5 "
        "(nothing was saved after it). Lower --lr."
    )
    assert [p.name for p in cb.list_states(tmp_path)] == ["step-000000000.json"]
    assert not list(tmp_path.glob(".tmp-*"))


def test_progress_bar_keeps_showing_the_newest_batch_when_ends_come_out_of_order(capsys):
    bar = cb.ProgressBar()
    bar.set_params({"verbose": 1, "epochs": 1, "steps": 4})
    bar.on_train_begin()
    bar.on_epoch_begin(0)
    bar.on_train_batch_end(2, {"loss": 1.0})
    bar.on_train_batch_end(0, {"loss": 9.0})
    assert bar.seen == 3
    bar.on_train_batch_end(3, {"loss": 0.5})
    bar.on_epoch_end(0, {"loss": 0.5})
    out = capsys.readouterr().out
    assert "4/4" in out and "9.0" not in out


def test_restore_falls_back_to_the_previous_state(tmp_path):
    model = _model()
    x, y = _data()
    model.fit(
        x,
        y,
        batch_size=10,
        epochs=2,
        verbose=0,
        callbacks=[cb.Backup(tmp_path, steps_per_epoch=4, every=0)],
    )
    (tmp_path / "step-000000008.weights.h5").write_bytes(b"truncated")
    (tmp_path / ".tmp-step-000000012.weights.h5").write_bytes(b"killed while saving")
    assert cb.restore(tmp_path, _model(seed=1))["step"] == 4
    assert not (tmp_path / ".tmp-step-000000012.weights.h5").exists()
    (tmp_path / "step-000000004.weights.h5").write_bytes(b"truncated")
    with pytest.raises(UserError, match="no readable resume state"):
        cb.restore(tmp_path, _model(seed=1))
    assert cb.restore(tmp_path / "none", _model()) is None


def test_save_models_keeps_the_best_across_sessions(tmp_path):
    model = _model()
    saver = cb.SaveModels(
        tmp_path / "best.keras", tmp_path / "last.keras", best_accuracy=0.5, best_epoch=3
    )
    saver.set_model(model)
    saver.on_epoch_end(4, {"val_accuracy": 0.4})
    assert (tmp_path / "last.keras").is_file() and not (tmp_path / "best.keras").exists()
    saver.on_epoch_end(5, {"val_accuracy": 0.6})
    assert (tmp_path / "best.keras").is_file()
    assert saver.state() == {"best_accuracy": 0.6, "best_epoch": 5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras", "last.keras"]
    loaded = keras.saving.load_model(tmp_path / "best.keras")
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])


def test_epoch_line_and_statistics():
    model = _model()
    x, y = _data()
    stream = io.StringIO()
    stats = cb.EpochStats(global_batch=10, epochs=2, print_line=True, stream=stream)
    history = model.fit(
        x, y, batch_size=10, epochs=2, validation_data=(x, y), callbacks=[stats], verbose=0
    )
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2  loss ")
    assert "train err" in lines[0] and "test err" in lines[0] and "img/s" in lines[0]
    assert history.history["lr"] == pytest.approx([0.1, 0.1])
    assert all(v > 0 for v in history.history["images_per_second"])


def test_history_trim_and_summary(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(
        "epoch,accuracy,images_per_second,loss,train_seconds,val_accuracy,val_loss\n"
        "0,0.5,100,1.0,10,0.6,0.9\n"
        "1,0.7,200,0.8,10,0.8,0.7\n"
        "2,0.8,200,0.6,10,0.75,0.8\n"
    )
    report.trim_history(path, 2)
    rows = report.read_history(path)
    assert [r["epoch"] for r in rows] == [0, 1]
    summary = report.summarize(
        rows,
        steps_per_epoch=5,
        global_batch=20,
        wall_seconds=30.0,
        config={"a": 1},
        paper_error=8.75,
    )
    assert summary["final_test_error"] == pytest.approx(0.2)
    assert summary["best_test_error"] == pytest.approx(0.2) and summary["best_epoch"] == 2
    assert summary["images_per_second"] == pytest.approx(150)
    assert summary["iterations"] == 10 and summary["paper_test_error"] == pytest.approx(0.0875)
    report.plot_curves(rows, 5, tmp_path / "curves.png", "test")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_epoch_means_cover_the_whole_epoch_across_a_resume():
    """An epoch cut after 3 of its 4 batches and resumed logs the means of all 4, as if it had
    never been cut; a second cut in the same epoch carries both parts."""
    x, y = _data()
    straight = _model().fit(x, y, batch_size=10, epochs=1, shuffle=False, verbose=0).history

    for cuts in ((3,), (1, 3)):
        model, carried, done = _model(), None, 0
        for cut in cuts:
            means = cb.EpochMeans(steps_per_epoch=4, carried=carried)
            model.fit(
                x[10 * done : 10 * cut],
                y[10 * done : 10 * cut],
                batch_size=10,
                shuffle=False,
                callbacks=[means],
                verbose=0,
            )
            carried, done = means.state(cut), cut  # what the backup keeps at step `cut`
            assert carried["epoch"] == 0 and carried["batches"] == cut
        assert cb.EpochMeans(4).state(4) is None  # an epoch boundary needs nothing carried
        means = cb.EpochMeans(steps_per_epoch=4, carried=carried)
        rest = model.fit(
            x[10 * done :],
            y[10 * done :],
            batch_size=10,
            shuffle=False,
            callbacks=[means],
            verbose=0,
        ).history
        assert rest["loss"][0] == pytest.approx(straight["loss"][0], rel=1e-6)
        assert rest["accuracy"][0] == pytest.approx(straight["accuracy"][0], abs=1e-6)
        alone = float(model.get_metrics_result()["loss"])  # what Keras alone would log
        assert alone != pytest.approx(straight["loss"][0], rel=1e-3)
