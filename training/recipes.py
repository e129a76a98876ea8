"""Training recipes (optimizer, loss, learning-rate schedule), the ``Schedule`` each resolves to for
one run, and the callback that drives it.

A ``Recipe`` is machine-independent: a global batch, a learning rate *at the reference batch of 128*
and a length in *reference iterations* (at batch 128) or in epochs. ``plan`` resolves it for one run:
the rate scales linearly with the global batch (``lr * batch / 128``, Goyal et al. 2017), and the
length and decay points are kept in images seen, so the schedule in epochs is the same at every batch
(64k iterations on CIFAR's 50,000 images at batch 128 are 164 whole epochs of 390 steps).

Weight decay is an L2 penalty built into the model (as the papers' SGD applied it); the ``paper``
recipe's warm-up of ResNet-110/1001 (lr 0.01 until the training error is below 80 %) ends on the
measured error (``LearningRateController``); fine-tuning trains the backbone at
``backbone_lr_scale`` times the classifier's rate (``BackboneRateSGD``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras

from keras_preact import ModelInfo
from keras_preact.command_line import UserError
from training import choices

REFERENCE_BATCH = 128
"""The papers' global batch: learning rates and iteration counts of a recipe are given at this batch."""
GATED_WINDOW = 20
"""Reference iterations over which the training error is averaged to end the gated warm-up."""
MAX_EPOCHS = 1_000_000
MAX_STEPS = 2**31 - 1
"""The most optimizer steps (and reference iterations) of a run: step counters overflow beyond."""

_RANGES: tuple[tuple[str, str, Callable[[Any], bool], str], ...] = (
    ("batch_size", "batch size", lambda v: v >= 1, "at least 1"),
    ("lr", "learning rate", lambda v: v > 0, "> 0"),
    ("momentum", "momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("weight_decay", "weight decay", lambda v: v >= 0, ">= 0"),
    ("label_smoothing", "label smoothing", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("lr_decay_factor", "lr decay factor", lambda v: 0 < v <= 1, "in (0, 1]"),
    ("warmup_epochs", "warm-up epochs", lambda v: v >= 0, ">= 0"),
    ("gated_warmup_lr", "warm-up lr", lambda v: v > 0, "> 0"),
    ("gated_warmup_error", "warm-up error threshold", lambda v: 0 < v <= 1, "in (0, 1]"),
    ("plateau_patience", "plateau patience", lambda v: v >= 1, "at least 1 epoch"),
    ("backbone_lr_scale", "backbone lr scale", lambda v: v > 0, "> 0"),
)
"""``(field, name in messages, test, the range in words)`` of every numeric setting."""
_CHOICES = (
    ("schedule", "schedule", choices.SCHEDULES),
    ("gated_warmup", "warm-up mode", choices.GATED_WARMUP_MODES),
    ("freeze", "freeze stage", choices.FREEZE_STAGES),
)


@dataclass(frozen=True)
class Recipe:
    """A recipe (see the module docstring); its length is ``epochs`` or ``iterations``, not both."""

    name: str = ""
    description: str = ""
    batch_size: int = REFERENCE_BATCH
    lr: float = 0.1
    scale_lr: bool = True
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    iterations: int | None = None
    epochs: int | None = None
    schedule: str = "step"
    lr_decay_at: tuple[float, ...] = (0.5, 0.75)
    lr_decay_factor: float = 0.1
    warmup_epochs: float = 0.0
    gated_warmup: str = "auto"
    gated_warmup_lr: float = 0.01
    gated_warmup_error: float = 0.8
    plateau_patience: int = 5
    freeze: str = "none"
    backbone_lr_scale: float = 1.0

    def overridden(self, **overrides: Any) -> Recipe:
        """A checked copy with the fields given (``None``: kept) replaced; ``epochs`` clears
        ``iterations`` and vice versa."""
        changes = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise UserError(f"unknown recipe setting(s): {', '.join(sorted(unknown))}")
        if "epochs" in changes and "iterations" in changes:
            raise UserError("give the training length as epochs or as iterations, not both")
        if "epochs" in changes:
            changes["iterations"] = None
        elif "iterations" in changes:
            changes["epochs"] = None
        if "lr_decay_at" in changes:
            changes["lr_decay_at"] = tuple(float(f) for f in changes["lr_decay_at"])
        recipe = dataclasses.replace(self, **changes)
        recipe.check()
        return recipe

    def check(self) -> None:
        """Raise ``UserError`` naming the first out-of-range or non-finite setting."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            numbers = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
                shown = ",".join(map(str, numbers))
                raise UserError(f"{f.name.replace('_', ' ')} must be finite, got {shown}")
        for name, label, ok, rule in _RANGES:
            if not ok(getattr(self, name)):
                raise UserError(f"{label} must be {rule}, got {getattr(self, name)}")
        for name, label, allowed in _CHOICES:
            if getattr(self, name) not in allowed:
                raise UserError(
                    f"unknown {label} {getattr(self, name)!r}: choose one of {', '.join(allowed)}"
                )
        if (self.iterations is None) == (self.epochs is None):
            raise UserError("a recipe needs exactly one of epochs or iterations")
        for name, most in (("iterations", MAX_STEPS), ("epochs", MAX_EPOCHS)):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"{name} must be at least 1")
            if value is not None and value > most:
                raise UserError(f"{name} must be at most {most}, got {value}")
        points = self.lr_decay_at
        if not all(0 < f < 1 for f in points) or list(points) != sorted(points):
            raise UserError(
                "lr decay points must be increasing fractions of training in (0, 1), got "
                f"{','.join(map(str, points))}"
            )


def _table(described: dict[str, str], *table: Recipe) -> dict[str, Recipe]:
    """The recipes of ``table`` named and described, in order, by ``described`` (``training.choices``)."""
    return {
        name: dataclasses.replace(r, name=name, description=text)
        for (name, text), r in zip(described.items(), table, strict=True)
    }


RECIPES = _table(
    choices.RECIPES,
    Recipe(iterations=64_000),
    Recipe(
        batch_size=256,
        nesterov=True,
        weight_decay=5e-4,
        label_smoothing=0.1,
        epochs=75,
        schedule="cosine",
        warmup_epochs=2.0,
        gated_warmup="off",
    ),
    Recipe(batch_size=64, epochs=30),
)

IMAGE_RECIPES = _table(
    choices.IMAGE_RECIPES,
    Recipe(
        batch_size=256,
        lr=0.05,  # 0.1 at batch 256
        epochs=120,
        lr_decay_at=(0.25, 0.5, 0.75),
        gated_warmup="off",
    ),
    Recipe(
        batch_size=32,
        lr=0.04,  # 0.01 at batch 32
        nesterov=True,
        epochs=10,
        schedule="cosine",
        gated_warmup="off",
        backbone_lr_scale=0.1,
    ),
)
RECIPE_FAMILIES = {"cifar": RECIPES, "images": IMAGE_RECIPES}


def get_recipe(name: str, family: str = "cifar", **overrides: Any) -> Recipe:
    """The named recipe of ``family`` (``cifar`` or ``images``) with ``overrides`` applied."""
    table = RECIPE_FAMILIES[family]
    if name not in table:
        raise UserError(f"unknown recipe {name!r}: choose one of {', '.join(table)}")
    return table[name].overridden(**overrides)


@dataclass(frozen=True)
class Schedule:
    """A recipe resolved for one run, in optimizer steps (``plan``). ``gated_lr`` (``None``: no
    gated warm-up) applies until the training error over the last ``gated_window`` batches is below
    ``gated_error``."""

    kind: str
    peak_lr: float
    steps_per_epoch: int
    epochs: int
    boundaries: tuple[int, ...] = ()
    decay_factor: float = 0.1
    warmup_steps: int = 0
    gated_lr: float | None = None
    gated_error: float = 0.8
    gated_window: int = 20
    plateau_patience: int = 5

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def lr_at(self, step: int, gate_open: bool = True, plateaus: int = 0) -> float:
        """The rate of update ``step`` (0-based), after the gated warm-up unless not ``gate_open``,
        and ``plateaus`` decays of a ``plateau`` schedule."""
        if self.gated_lr is not None and not gate_open:
            return self.gated_lr
        if step < self.warmup_steps:
            return self.peak_lr * step / self.warmup_steps
        if self.kind == "cosine":
            decay_steps = max(1, self.total_steps - self.warmup_steps)
            progress = min(step - self.warmup_steps, decay_steps) / decay_steps
            return self.peak_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.kind == "plateau":
            return self.peak_lr * self.decay_factor**plateaus
        passed = sum(step >= b for b in self.boundaries)
        return self.peak_lr * self.decay_factor**passed

    def keras_learning_rate(self) -> Any:
        """The optimizer's ``learning_rate``: Keras' ``CosineDecay`` where no controller is needed,
        else the initial value, which ``LearningRateController`` updates."""
        if not self.needs_controller:
            return keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=0.0 if self.warmup_steps else self.peak_lr,
                decay_steps=max(1, self.total_steps - self.warmup_steps),
                alpha=0.0,
                warmup_target=self.peak_lr if self.warmup_steps else None,
                warmup_steps=self.warmup_steps,
            )
        return self.lr_at(0, gate_open=self.gated_lr is None)

    @property
    def needs_controller(self) -> bool:
        """Whether ``LearningRateController`` drives the rate (all but cosine without gated warm-up)."""
        return self.kind != "cosine" or self.gated_lr is not None

    def describe(self) -> dict[str, Any]:
        """The schedule as plain data, for ``metrics.json``."""
        return {**dataclasses.asdict(self), "total_steps": self.total_steps}


def plan(
    recipe: Recipe, *, model: ModelInfo | None, num_examples: int, steps_per_epoch: int
) -> Schedule:
    """Resolve ``recipe`` for ``model`` (``None``: a trained network, never warmed up by
    ``gated_warmup="auto"``) and ``num_examples`` images in ``steps_per_epoch`` batches (see the
    module docstring; rates are not scaled without ``recipe.scale_lr``)."""
    batch = recipe.batch_size
    scale = batch / REFERENCE_BATCH if recipe.scale_lr else 1.0
    epochs, length = _length(recipe, steps_per_epoch)
    if epochs * steps_per_epoch > MAX_STEPS:
        raise UserError(
            f"{epochs} epochs of {steps_per_epoch} steps: more than {MAX_STEPS} steps; train "
            "fewer epochs or with a larger batch"
        )
    boundaries = tuple(round(f * length) for f in recipe.lr_decay_at)
    warmup_steps = round(recipe.warmup_epochs * num_examples / batch)
    if recipe.gated_warmup == "auto":
        gated = model is not None and model.paper_warmup
    else:
        gated = recipe.gated_warmup == "on"
    return Schedule(
        kind=recipe.schedule,
        peak_lr=recipe.lr * scale,
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        boundaries=boundaries if recipe.schedule == "step" else (),
        decay_factor=recipe.lr_decay_factor,
        warmup_steps=min(warmup_steps, epochs * steps_per_epoch),
        gated_lr=recipe.gated_warmup_lr * scale if gated else None,
        gated_error=recipe.gated_warmup_error,
        # The error is averaged over the same number of images (2,560) whatever the batch.
        gated_window=max(1, round(GATED_WINDOW * REFERENCE_BATCH / batch)),
        plateau_patience=recipe.plateau_patience,
    )


def _length(recipe: Recipe, steps_per_epoch: int) -> tuple[int, float]:
    """``(whole epochs, length in steps)`` of ``recipe`` at its batch."""
    if recipe.iterations is not None:
        # Length in steps at this batch (a float), then whole epochs.
        length = recipe.iterations * REFERENCE_BATCH / recipe.batch_size
        return max(1, round(length / steps_per_epoch)), length
    epochs = int(recipe.epochs)  # type: ignore[arg-type]
    return epochs, float(epochs * steps_per_epoch)


def compression_note(recipe: Recipe, schedule: Schedule, *, family: str = "cifar") -> str | None:
    """E.g. ``recipe 'paper' compressed to 1 epoch (its full length: 164 epochs): lr 0.1, 0.01 from
    epoch 0.5, 0.001 from epoch 0.75`` when ``schedule`` is shorter than the named recipe, else ``None``."""
    named = RECIPE_FAMILIES[family].get(recipe.name)
    if named is None:
        return None
    full_recipe = dataclasses.replace(recipe, epochs=named.epochs, iterations=named.iterations)
    full, _ = _length(full_recipe, schedule.steps_per_epoch)
    if schedule.epochs >= full:
        return None

    def epoch(step: int) -> str:
        return f"{step / schedule.steps_per_epoch:.3g}"

    # The rates as they will run: decays that fall on one step merged, those before the first
    # step (or the end of the warm-up) in the starting rate, those after the last step left out,
    # and a decay by a factor of 1 is no change.
    start = schedule.lr_at(schedule.warmup_steps)
    lr = f"lr {start:.3g}"
    if schedule.warmup_steps:
        lr = f"lr from 0 to {schedule.peak_lr:.3g} by epoch {epoch(schedule.warmup_steps)}"
        if start != schedule.peak_lr:
            lr += f", {start:.3g} from then"
    if schedule.gated_lr is not None:
        lr = (
            f"lr {schedule.gated_lr:.3g} until the training error is below "
            f"{100 * schedule.gated_error:.3g} %, then {lr}"
        )
    if schedule.kind == "cosine":
        lr += f", cosine decay to 0 by epoch {schedule.epochs}"
    if schedule.kind == "plateau":
        lr += (
            f", x{schedule.decay_factor:.3g} after {schedule.plateau_patience} epochs without a "
            "lower validation error"
        )
    current, changes = start, 0
    for boundary in sorted(set(schedule.boundaries)):
        if not schedule.warmup_steps < boundary < schedule.total_steps:
            continue
        rate = schedule.lr_at(boundary)
        if rate != current:
            lr += f", {rate:.3g} from epoch {epoch(boundary)}"
            current, changes = rate, changes + 1
    if schedule.kind == "step" and not changes:
        lr += ", constant"
    unit = "epoch" if schedule.epochs == 1 else "epochs"
    # A recipe whose rate never decays has no schedule that the shorter length compresses.
    decays = recipe.schedule != "step" or recipe.lr_decay_factor != 1
    full_length = f" (its full length: {full} epochs)" if decays else ""
    return f"recipe {recipe.name!r} compressed to {schedule.epochs} {unit}{full_length}: {lr}"


def make_optimizer(
    recipe: Recipe, schedule: Schedule, *, mixed_precision: str | None = None
) -> Any:
    """SGD (``BackboneRateSGD`` with a ``backbone_lr_scale``), loss-scaled under float16."""
    sgd = (schedule.keras_learning_rate(), recipe.momentum, recipe.nesterov)
    if recipe.backbone_lr_scale != 1.0:
        optimizer = BackboneRateSGD(*sgd, backbone_lr_scale=recipe.backbone_lr_scale)
    else:
        optimizer = keras.optimizers.SGD(*sgd)
    if mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


HEAD_LAYERS = ("logits",)


@keras.saving.register_keras_serializable(package="keras_preact_training")
class BackboneRateSGD(keras.optimizers.SGD):
    """Keras' SGD scaling the gradients of every variable outside the ``head`` layers by
    ``backbone_lr_scale`` in ``apply`` (every backend's step calls it): SGD being linear in the
    gradient, that is exactly a rate of ``lr * backbone_lr_scale`` (Keras has no per-layer rate)."""

    def __init__(
        self,
        *args: Any,  # SGD's: learning_rate, momentum, nesterov, ...
        backbone_lr_scale: float = 1.0,
        head: tuple[str, ...] | list[str] = HEAD_LAYERS,
        name: str = "backbone_rate_sgd",
        **kwargs: Any,
    ):
        super().__init__(*args, name=name, **kwargs)
        self.backbone_lr_scale = float(backbone_lr_scale)
        self.head = tuple(head)

    def apply(self, grads, trainable_variables=None):
        variables = (
            self._trainable_variables if trainable_variables is None else trainable_variables
        )
        scaled = [
            g
            if g is None or v.path.split("/")[0] in self.head
            else keras.ops.multiply(g, keras.ops.cast(self.backbone_lr_scale, g.dtype))
            for g, v in zip(grads, list(variables), strict=True)
        ]
        return super().apply(scaled, trainable_variables)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "backbone_lr_scale": self.backbone_lr_scale,
            "head": list(self.head),
        }


def one_hot_labels(recipe: Recipe) -> bool:
    """Whether the loss of ``recipe`` needs one-hot labels (Keras smooths only categorical labels)."""
    return recipe.label_smoothing > 0


def make_loss(recipe: Recipe) -> Any:
    """Cross-entropy (categorical with label smoothing)."""
    if one_hot_labels(recipe):
        return keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy()


class LearningRateController(keras.callbacks.Callback):
    """Sets the optimizer's rate from a ``Schedule`` where it changes, ends the gated warm-up on the
    training error (each batch's, from Keras' running means), and counts a ``plateau`` schedule's
    decays (``plateau_patience`` epochs without a lower validation error). ``state()``, given back,
    resumes with exactly the rates of an uninterrupted run."""

    def __init__(self, schedule: Schedule, state: dict[str, Any] | None = None):
        super().__init__()
        state = state or {}
        self.schedule = schedule
        self.step: int = int(state.get("step", 0))
        opened = state.get("gate_opened_at")
        self.gate_opened_at: int | None = opened if schedule.gated_lr is not None else 0
        self.recent_errors: list[float] = list(state.get("recent_errors", []))
        plateau = state.get("plateau", {})
        self.plateaus: int = int(plateau.get("plateaus", 0))
        self.best_error: float | None = plateau.get("best_error")
        self.epochs_without_gain: int = int(plateau.get("epochs_without_gain", 0))
        self._current: float | None = None
        self._previous_mean = 0.0
        # Without a closed gate the batch-end hook does nothing, so Keras may run it on its own
        # thread (on JAX: steps are not waited for one by one); the gate needs each step's accuracy
        # before the next step's rate.
        self.async_safe = self.gate_open

    @property
    def gate_open(self) -> bool:
        return self.gate_opened_at is not None

    def current_lr(self) -> float:
        return self.schedule.lr_at(self.step, self.gate_open, self.plateaus)

    def state(self, step: int | None = None) -> dict[str, Any]:
        """The resume state after ``step`` steps (default: all begun so far)."""
        return {
            "step": self.step if step is None else step,
            "gate_opened_at": self.gate_opened_at,
            "recent_errors": list(self.recent_errors),
            "plateau": {
                "plateaus": self.plateaus,
                "best_error": self.best_error,
                "epochs_without_gain": self.epochs_without_gain,
            },
        }

    def on_train_begin(self, logs=None):
        self._current = None
        self._apply()

    def on_epoch_begin(self, epoch, logs=None):
        self._previous_mean = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self._apply()
        self.step += 1  # counted here, in step order, whether batch ends run in order or not

    def on_epoch_end(self, epoch, logs=None):
        if self.schedule.kind != "plateau" or not logs or "val_accuracy" not in logs:
            return
        error = 1.0 - float(logs["val_accuracy"])
        if self.best_error is None or error < self.best_error:
            self.best_error, self.epochs_without_gain = error, 0
            return
        self.epochs_without_gain += 1
        if self.epochs_without_gain >= self.schedule.plateau_patience:
            self.plateaus += 1
            self.epochs_without_gain = 0

    def on_train_batch_end(self, batch, logs=None):
        if self.gate_open or not logs or "accuracy" not in logs:
            return
        mean = float(logs["accuracy"])
        accuracy = (batch + 1) * mean - batch * self._previous_mean
        self._previous_mean = mean
        window = self.schedule.gated_window
        self.recent_errors = [*self.recent_errors, 1.0 - accuracy][-window:]
        full = len(self.recent_errors) == window
        if full and sum(self.recent_errors) / window < self.schedule.gated_error:
            self.gate_opened_at = self.step

    def _apply(self) -> None:
        lr = self.current_lr()
        # Touch the optimizer only when the value changes: on JAX every access to the model outside
        # the compiled step synchronises the whole training state.
        if lr != self._current:
            self.model.optimizer.learning_rate = lr
            self._current = lr
