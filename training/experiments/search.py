"""The keras-tuner search that ``python -m training.tune`` runs (its docstring says how)."""

from __future__ import annotations

import dataclasses
import itertools
import math
import shlex
import sys
from pathlib import Path
from typing import Any

import keras

from keras_preact.command_line import UserError
from training import recipes
from training.choices import TUNERS
from training.data.batches import TrainingData
from training.experiments.search_space import SearchSpace
from training.run import network, pipeline, strategy
from training.run import run_folder as rundir
from training.run.pipeline import Resolved, TrainConfig


def resolve_space(
    space: SearchSpace, options: dict[str, Any]
) -> dict[tuple[str, str, int], tuple[Any, dict]]:
    """Check ``space`` (``UserError`` for an empty or impossible one) and resolve every model
    it may choose, with ``options`` (the base run's model options): ``(model, unit, width)``
    -> ``training.run.network.resolve``'s ``(ModelInfo, builder options)``."""
    for name, (low, high) in (("lr", space.lr), ("weight decay", space.weight_decay)):
        if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
            raise UserError(f"{name} range must be 0 < LOW <= HIGH, got {low},{high}")
    if not space.batch_sizes or min(space.batch_sizes) < 1:
        raise UserError("batch sizes must be positive integers")
    if not space.models or not space.widths or min(space.widths) < 1:
        raise UserError("give at least one model and widths of at least 1")
    resolved = {}
    units = space.units or (options.get("unit", ""),)
    for model, unit, width in itertools.product(space.models, units, space.widths):
        chosen = {**options, **({"unit": unit} if unit else {})}
        if width != 1:
            chosen["width_multiplier"] = width
        resolved[model, unit, width] = network.resolve(model, chosen)
    return resolved


def build_hypermodel(
    base: Resolved,
    space: SearchSpace,
    models: dict[tuple[str, str, int], tuple[Any, dict]],
    runtime: strategy.Runtime,
    arrays: TrainingData,
    seed: int,
):
    """A ``keras_tuner.HyperModel`` whose trials are ``base`` with the hyper-parameters chosen in
    ``space`` (``models``: from ``resolve_space``), trained on ``arrays`` (its test split is the
    validation split)."""
    import keras_tuner as kt  # optional dependency: only searches need it

    class CifarHyperModel(kt.HyperModel):
        def _trial(self, hp: Any) -> Resolved:
            config = base.config
            overrides = {
                **config.recipe_overrides,
                "lr": hp.Float("lr", *space.lr, sampling="log"),
                "weight_decay": hp.Float("weight_decay", *space.weight_decay, sampling="log"),
                "batch_size": hp.Choice("batch_size", list(space.batch_sizes)),
            }
            trial = {"recipe": recipes.get_recipe(config.recipe, config.recipe_family, **overrides)}
            if base.model is not None:  # else a trained network fine-tuned: no model to choose
                name = hp.Choice("model", list(space.models))
                unit = config.model_options.get("unit", "")
                unit = hp.Choice("unit", list(space.units)) if space.units else unit
                width = (
                    hp.Choice("width_multiplier", [*space.widths]) if space.widths != (1,) else 1
                )
                trial["model"], trial["model_options"] = models[name, unit, width]
                config = dataclasses.replace(config, model=name)
            config = dataclasses.replace(config, recipe_overrides=overrides)
            return dataclasses.replace(base, config=config, **trial)

        def build(self, hp):
            trial = self._trial(hp)
            runtime.check_batch(trial.recipe.batch_size)
            schedule = self._schedule(trial, trial.recipe.epochs or 1)
            return pipeline.compile_model(trial, runtime, schedule, source=arrays)

        def _schedule(self, trial: Resolved, epochs: int) -> recipes.Schedule:
            trial = dataclasses.replace(trial, recipe=trial.recipe.overridden(epochs=epochs))
            return trial.schedule(arrays.num_train)

        def fit(self, hp, model, *args, epochs: int = 1, callbacks=None, verbose=0, **kwargs):
            trial = self._trial(hp)
            recipe, schedule = trial.recipe, self._schedule(trial, epochs)
            extra = [keras.callbacks.TerminateOnNaN()]
            if schedule.needs_controller:
                extra.append(recipes.LearningRateController(schedule))
            return model.fit(
                arrays.train_batches(recipe, seed=seed, augment=base.config.augment),
                steps_per_epoch=schedule.steps_per_epoch,
                epochs=epochs,
                initial_epoch=kwargs.get("initial_epoch", 0),
                validation_data=arrays.eval_batches(
                    recipe, base.config.eval_batch_size or recipe.batch_size
                ),
                callbacks=[*(callbacks or []), *extra],
                shuffle=False,
                verbose=verbose,
            )

    return CifarHyperModel(name="cifar")


def search(
    base: TrainConfig,
    space: SearchSpace,
    *,
    tuner: str,
    output: str,
    max_trials: int,
    epochs: int,
    max_epochs: int,
    validation_split: float,
    seed: int,
) -> list[dict[str, Any]]:
    """Run (or resume) the search and return the best trials, best first (also in
    ``best_trials.json``)."""
    resolved = pipeline.check(base)
    if resolved.model is None and (space.units or space.widths != (1,)):
        raise UserError("--units and --widths choose new networks, not one given with --weights")
    models = {} if resolved.model is None else resolve_space(space, dict(base.model_options))
    if not (math.isfinite(validation_split) and 0 < validation_split < 1):
        raise UserError(f"--validation-split must be in (0, 1), got {validation_split}")
    if tuner not in TUNERS:
        raise UserError(f"unknown tuner {tuner!r}: choose one of {', '.join(TUNERS)}")
    if resolved.strategy.name == "multi_worker":
        raise UserError("the tuner runs on one machine: use default, one_device or mirrored")
    if min(max_trials, epochs, max_epochs) < 1:
        raise UserError("--max-trials, --epochs and --max-epochs must be at least 1")
    directory = Path(output).expanduser().absolute()
    hyperband = tuner == "hyperband"
    settings = {
        "config": base.identity(),
        "space": dataclasses.asdict(space),
        "tuner": tuner,
        "epochs": None if hyperband else epochs,
        "max_epochs": max_epochs if hyperband else None,
        "max_trials": None if hyperband else max_trials,
        "validation_split": validation_split,
        "seed": seed,
    }
    rundir.open_search(directory, settings)

    import keras_tuner as kt  # optional dependency: only searches need it

    runtime = strategy.create(resolved.strategy)
    pipeline.seed_everything(seed, deterministic=False)
    arrays = pipeline.load_data(resolved).holdout(validation_split)
    hypermodel = build_hypermodel(resolved, space, models, runtime, arrays, seed)
    tuners = {"hyperband": kt.Hyperband, "bayesian": kt.BayesianOptimization}
    budget = {"max_epochs": max_epochs} if hyperband else {"max_trials": max_trials}
    searcher = tuners.get(tuner, kt.RandomSearch)(
        hypermodel,
        objective=kt.Objective("val_accuracy", "max"),
        directory=str(directory),
        project_name="search",
        overwrite=False,
        seed=seed,
        distribution_strategy=runtime.strategy,
        max_consecutive_failed_trials=3,
        **budget,
    )
    with runtime.scope():
        searcher.search(epochs=epochs, verbose=1 if sys.stdout.isatty() else 0)
    best = [
        {
            "trial": trial.trial_id,
            "val_accuracy": trial.score,
            "hyperparameters": trial.hyperparameters.values,
            "command": command(base, trial.hyperparameters.values),
        }
        for trial in searcher.oracle.get_best_trials(num_trials=5)
    ]
    rundir.write_json(directory / "best_trials.json", best)
    searcher.results_summary(num_trials=min(5, len(best)))
    return best


def command(base: TrainConfig, values: dict[str, Any]) -> str:
    """The ``python -m training.cifar`` (or ``training.images``) command that trains a trial's
    choice ``values`` with the full recipe."""
    images = base.images
    new = images is None or images.weights is None
    width = values.get("width_multiplier")
    options = {
        "--data": images and images.data,
        "--model": values.get("model", base.model) if new else None,
        "--weights": None if new else images.weights,
        "--dataset": base.dataset if images is None else None,
        "--recipe": base.recipe,
        "--image-size": images and images.image_size,
        "--unit": values.get("unit"),
        "--model-option": None if width is None else f"width_multiplier={width}",
        "--lr": f"{values['lr']:.4g}",
        "--weight-decay": f"{values['weight_decay']:.3g}",
        "--batch-size": values["batch_size"],
    }
    program = ["python", "-m", "training.cifar" if images is None else "training.images"]
    return shlex.join(rundir.command_line(program, options))
