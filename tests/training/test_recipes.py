"""Recipes resolved into schedules: boundaries, lengths, lr scaling, warm-ups, the controller callback."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

import keras_preact
from keras_preact.command_line import UserError
from training import recipes

CIFAR_TRAIN = 50_000


def _plan(recipe: recipes.Recipe, model: str = "resnet20v1", n: int = CIFAR_TRAIN):
    return recipes.plan(
        recipe,
        model=keras_preact.resolve_model(model),
        num_examples=n,
        steps_per_epoch=n // recipe.batch_size,
    )


def test_paper_recipe_at_batch_128_is_the_papers_schedule():
    schedule = _plan(recipes.get_recipe("paper"))
    assert schedule.boundaries == (32_000, 48_000)
    assert schedule.steps_per_epoch == 390 and schedule.epochs == 164
    assert schedule.total_steps == 63_960  # 64k iterations, rounded to whole epochs
    assert schedule.peak_lr == pytest.approx(0.1)
    assert schedule.lr_at(0) == pytest.approx(0.1)
    assert schedule.lr_at(31_999) == pytest.approx(0.1)
    assert schedule.lr_at(32_000) == pytest.approx(0.01)
    assert schedule.lr_at(47_999) == pytest.approx(0.01)
    assert schedule.lr_at(48_000) == pytest.approx(0.001)
    assert schedule.gated_lr is None


@pytest.mark.parametrize(
    ("batch", "boundaries", "lr"),
    [(64, (64_000, 96_000), 0.05), (256, (16_000, 24_000), 0.2), (1024, (4_000, 6_000), 0.8)],
)
def test_paper_schedule_scales_with_the_global_batch(batch, boundaries, lr):
    """Decay points stay at the same number of images seen; the lr scales linearly with the batch."""
    schedule = _plan(recipes.get_recipe("paper", batch_size=batch))
    assert schedule.boundaries == boundaries
    assert schedule.peak_lr == pytest.approx(lr)
    images = [b * batch for b in schedule.boundaries]
    assert images == [32_000 * 128, 48_000 * 128]
    # The length is the paper's 64k x 128 images, to the nearest whole epoch.
    seen = schedule.total_steps * batch
    assert abs(seen - 64_000 * 128) <= schedule.steps_per_epoch * batch / 2
    assert schedule.lr_at(boundaries[0] - 1) == pytest.approx(lr)
    assert schedule.lr_at(boundaries[0]) == pytest.approx(lr / 10)
    assert schedule.lr_at(boundaries[1]) == pytest.approx(lr / 100)


def test_no_lr_scaling_and_epoch_overrides():
    schedule = _plan(recipes.get_recipe("paper", batch_size=512, scale_lr=False, epochs=10))
    assert schedule.peak_lr == pytest.approx(0.1)
    assert schedule.epochs == 10 and schedule.steps_per_epoch == 97
    assert schedule.boundaries == (485, 728)  # 50 % and 75 % of 970 steps
    iterations = _plan(recipes.get_recipe("demo", iterations=1000))
    assert iterations.epochs == round(1000 * 128 / 64 / (CIFAR_TRAIN // 64))


@pytest.mark.parametrize("model", ["resnet110v1", "resnet110v2", "resnet1001v2"])
def test_gated_warmup_is_on_for_the_papers_deep_models(model):
    schedule = _plan(recipes.get_recipe("paper", batch_size=256), model=model)
    assert schedule.gated_lr == pytest.approx(0.02)  # 0.01 at batch 128, scaled
    assert schedule.gated_window == 10  # 20 batches of 128 = 10 of 256
    assert schedule.lr_at(5, gate_open=False) == pytest.approx(0.02)
    assert schedule.lr_at(5, gate_open=True) == pytest.approx(0.2)


def test_gated_warmup_modes():
    assert _plan(recipes.get_recipe("paper"), model="resnet56v1").gated_lr is None
    assert _plan(recipes.get_recipe("paper", gated_warmup="on"), model="resnet56v1").gated_lr
    off = recipes.get_recipe("paper", gated_warmup="off")
    assert _plan(off, model="resnet110v1").gated_lr is None


def test_fast_recipe_is_cosine_with_linear_warmup_matching_keras():
    recipe = recipes.get_recipe("fast")
    schedule = _plan(recipe, model="resnet164v2")
    assert (recipe.batch_size, recipe.nesterov, recipe.label_smoothing) == (256, True, 0.1)
    assert schedule.peak_lr == pytest.approx(0.2) and schedule.epochs == 75
    assert schedule.warmup_steps == round(2 * CIFAR_TRAIN / 256)
    keras_schedule = schedule.keras_learning_rate()
    for step in (0, 1, 200, schedule.warmup_steps, 5000, schedule.total_steps - 1):
        expected = float(keras.ops.convert_to_numpy(keras_schedule(step)))
        assert schedule.lr_at(step) == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert schedule.lr_at(schedule.total_steps) == pytest.approx(0.0, abs=1e-9)
    middle = schedule.warmup_steps + (schedule.total_steps - schedule.warmup_steps) // 2
    assert schedule.lr_at(middle) == pytest.approx(0.1, rel=1e-3)
    assert not schedule.needs_controller
    # With the error-gated warm-up on, the controller drives the cosine schedule too.
    gated = _plan(recipes.get_recipe("fast", gated_warmup="on"), model="resnet164v2")
    assert gated.needs_controller and isinstance(gated.keras_learning_rate(), float)
    assert gated.lr_at(100, gate_open=False) == pytest.approx(0.02)
    assert gated.lr_at(100) == pytest.approx(schedule.lr_at(100))


def test_bad_overrides_are_one_line_user_errors():
    cases = {
        "lr": -1.0,
        "batch_size": 0,
        "momentum": 1.5,
        "schedule": "linear",
        "lr_decay_at": (0.75, 0.5),
        "gated_warmup": "sometimes",
        "label_smoothing": 1.0,
    }
    for key, value in cases.items():
        with pytest.raises(UserError) as e:
            recipes.get_recipe("paper", **{key: value})
        assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="paper, fast, demo"):
        recipes.get_recipe("fastest")
    with pytest.raises(UserError, match="not both"):
        recipes.get_recipe("paper", epochs=3, iterations=100)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("lr", math.inf),
        ("lr", math.nan),
        ("weight_decay", math.inf),
        ("warmup_epochs", math.inf),
        ("gated_warmup_lr", math.inf),
        ("lr_decay_at", (0.5, math.nan)),
        ("lr_decay_factor", math.nan),
    ],
)
def test_non_finite_settings_are_refused(key, value):
    with pytest.raises(UserError, match=f"{key.replace('_', ' ')} must be finite, got"):
        recipes.get_recipe("paper", **{key: value})


def test_a_shortened_recipe_says_how_it_is_compressed():
    one_epoch = _plan(recipes.get_recipe("paper", epochs=1))
    assert recipes.compression_note(recipes.get_recipe("paper", epochs=1), one_epoch) == (
        "recipe 'paper' compressed to 1 epoch (its full length: 164 epochs): lr 0.1, 0.01 from "
        "epoch 0.5, 0.001 from epoch 0.749"
    )
    gated = recipes.get_recipe("paper", iterations=1000)
    assert recipes.compression_note(gated, _plan(gated, model="resnet110v1")) == (
        "recipe 'paper' compressed to 3 epochs (its full length: 164 epochs): lr 0.01 until the "
        "training error is below 80 %, then lr 0.1, 0.01 from epoch 1.28, 0.001 from epoch 1.92"
    )
    fast = recipes.get_recipe("fast", epochs=3)
    assert recipes.compression_note(fast, _plan(fast)) == (
        "recipe 'fast' compressed to 3 epochs (its full length: 75 epochs): lr from 0 to 0.2 by "
        "epoch 2.01, cosine decay to 0 by epoch 3"
    )
    for full in (recipes.get_recipe("paper"), recipes.get_recipe("fast", epochs=80)):
        assert recipes.compression_note(full, _plan(full)) is None


def _controller_run(schedule, accuracies, state=None, start_batch=0):
    """Drive a LearningRateController through ``accuracies`` (per batch) like fit does; return the
    learning rate the optimizer had at each step and the controller."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(1.0), "mse")
    controller = recipes.LearningRateController(schedule, state)
    controller.set_model(model)
    controller.on_train_begin()
    controller.on_epoch_begin(0)
    seen, correct = [], 0.0
    for i, accuracy in enumerate(accuracies):
        batch = i  # one fit epoch from the controller's point of view
        controller.on_train_batch_begin(batch)
        seen.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
        correct += accuracy
        controller.on_train_batch_end(batch, {"accuracy": correct / (i + 1), "loss": 1.0})
    return seen, controller


def test_controller_lets_keras_run_batch_ends_late_only_when_they_cannot_change_a_rate():
    """On JAX, Keras runs batch-end hooks on a thread (steps are then not waited for one by one)
    only if every callback allows it: the controller does while no gate is closed, and its rates
    are then the same whether each end runs after its step or all of them come late."""
    demo = recipes.get_recipe("demo")  # a step schedule: decays after 15 and 22 of 30 epochs
    schedule = _plan(demo, n=demo.batch_size * 2)  # 2 steps per epoch: decays at steps 30 and 44
    gated = _plan(recipes.get_recipe("paper"), model="resnet110v1")
    assert recipes.LearningRateController(schedule).async_safe
    assert not recipes.LearningRateController(gated).async_safe
    assert recipes.LearningRateController(gated, {"step": 50, "gate_opened_at": 40}).async_safe

    in_order, _ = _controller_run(schedule, [0.5] * 50)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(1.0), "mse")
    late = recipes.LearningRateController(schedule)
    late.set_model(model)
    late.on_train_begin()
    late.on_epoch_begin(0)
    rates = []
    for batch in range(50):
        late.on_train_batch_begin(batch)
        rates.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
    for batch in range(50):
        late.on_train_batch_end(batch, {"accuracy": 0.5, "loss": 1.0})
    assert rates == in_order and len(set(rates)) == 3 and late.step == 50


def test_controller_ends_the_gated_warmup_on_the_measured_training_error():
    schedule = _plan(recipes.get_recipe("paper"), model="resnet110v1")
    window = schedule.gated_window
    # Training error 90 % for 30 batches, then 68 %: the mean of the last 20 batches falls below
    # 80 % once 10 of them are at 68 % (9 give 80.1 %), i.e. after batch 30 + 10 = 40.
    accuracies = [0.1] * 30 + [0.32] * 30
    lrs, controller = _controller_run(schedule, accuracies)
    assert window == 20
    first_open = 40
    assert controller.gate_opened_at == first_open
    assert lrs[:first_open] == pytest.approx([0.01] * first_open)
    assert lrs[first_open:] == pytest.approx([0.1] * (len(accuracies) - first_open))

    # Never below 80 %: the warm-up goes on (it is driven by the error, not by a step count).
    lrs, controller = _controller_run(schedule, [0.15] * 60)
    assert controller.gate_opened_at is None and set(np.round(lrs, 6)) == {0.01}


def test_controller_state_resumes_the_same_rates():
    """Stopping after 35 batches and resuming from ``state()`` gives the uninterrupted rates."""
    schedule = _plan(recipes.get_recipe("paper"), model="resnet110v1")
    accuracies = [0.1] * 30 + [0.32] * 30
    full, _ = _controller_run(schedule, accuracies)
    first, controller = _controller_run(schedule, accuracies[:35])
    second, _ = _controller_run(schedule, accuracies[35:], state=controller.state())
    assert first + second == pytest.approx(full)


def test_controller_applies_boundaries_at_the_exact_steps():
    recipe = recipes.get_recipe("paper", epochs=4)
    schedule = _plan(recipe, n=1280)
    assert schedule.boundaries == (20, 30)
    lrs, _ = _controller_run(schedule, [0.5] * 40)
    assert [i for i in range(1, 40) if not math.isclose(lrs[i], lrs[i - 1])] == [20, 30]
