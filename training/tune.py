"""``python -m training.tune``: keras-tuner search over the training pipeline's hyper-parameters.

Each trial builds and compiles its model with ``training.run.pipeline.compile_model`` and trains it on
the data's training batches (``training.data.batches.TrainingData.train_batches``) with the recipe's
schedule (resolved for the trial's batch and length), under the same data and strategy options as
``python -m training.cifar`` (or, with ``--data``, ``python -m training.images``: a folder of
images, or a network to fine-tune with ``--weights``). Trials are scored on a validation split
held out from the training images (``--validation-split``, the papers' 45k/5k protocol), never on
the test set. The tuner directory is resumable: re-running the same command continues the
search; a different command on it is refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from functools import partial
from pathlib import Path
from typing import Any

# Nothing Keras or TensorFlow at module level: --help and usage errors answer at once.
from keras_preact.catalogue import UNITS
from keras_preact.command_line import UserError
from training import options
from training.choices import TUNERS
from training.command_line import Command

EXAMPLES = """\
examples:
  # 20 random trials of 10 epochs over lr, weight decay and batch size for ResNet-20 on CIFAR-10
  python -m training.tune --models resnet20v1 --max-trials 20 --epochs 10 --output runs/tune-r20

  # 8 trials of 5 epochs fine-tuning a ResNet-50 on a folder of images (validation: 10 % of train)
  python -m training.tune --data ~/flowers --weights resnet50.keras --recipe finetune \\
      --max-trials 8 --epochs 5 --lr-range 0.005,0.1 --batch-sizes 32,64 --output runs/tune-flowers

  # Hyperband over depth and width on the embedded sample, two CPU replicas
  python -m training.tune --dataset cifar10-sample --tuner hyperband --max-epochs 9 \\
      --models resnet8v1,resnet14v1,resnet20v1 --widths 1,2 --strategy mirrored --cpu-replicas 2

outputs (in --output): the keras-tuner project (trials, checkpoints, oracle state: re-run the same
command to resume), search.json (the search settings) and best_trials.json (the best trials'
hyper-parameters and validation accuracy, and the training command for the best one).
"""


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """What the tuner may choose. Ranges are sampled log-uniformly; lists are choices."""

    lr: tuple[float, float] = (0.02, 0.4)
    weight_decay: tuple[float, float] = (1e-5, 1e-3)
    batch_sizes: tuple[int, ...] = (64, 128, 256)
    models: tuple[str, ...] = ("resnet20v1",)
    units: tuple[str, ...] = ()
    widths: tuple[int, ...] = (1,)

    def resolve(self, options: dict[str, Any]) -> dict[tuple[str, str, int], tuple[Any, dict]]:
        """Check the space (``UserError`` for an empty or impossible one) and resolve every model
        it may choose, with ``options`` (the base run's model options): ``(model, unit, width)``
        -> ``training.run.network.resolve``'s ``(ModelInfo, builder options)``."""
        from keras_preact.command_line import UserError
        from training.run import network as model_lib

        for name, (low, high) in (("lr", self.lr), ("weight decay", self.weight_decay)):
            if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
                raise UserError(f"{name} range must be 0 < LOW <= HIGH, got {low},{high}")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise UserError("batch sizes must be positive integers")
        if not self.models or not self.widths or min(self.widths) < 1:
            raise UserError("give at least one model and widths of at least 1")
        resolved = {}
        for model in self.models:
            for unit in self.units or (options.get("unit", ""),):
                for width in self.widths:
                    chosen = dict(options)
                    if unit:
                        chosen["unit"] = unit
                    if width != 1:
                        chosen["width_multiplier"] = width
                    resolved[model, unit, width] = model_lib.resolve(model, chosen)
        return resolved


def build_hypermodel(
    base: Any,
    space: SearchSpace,
    models: dict[tuple[str, str, int], tuple[Any, dict]],
    runtime: Any,
    arrays: Any,
    seed: int,
):
    """A ``keras_tuner.HyperModel`` whose trials are ``base`` (a ``training.run.pipeline.Resolved``)
    with the hyper-parameters chosen in ``space`` (its ``models`` resolved by
    ``SearchSpace.resolve``; none when ``base`` fine-tunes a trained network), trained on
    ``arrays`` (a ``training.data.batches.TrainingData``: CIFAR arrays or images; its test split is the
    validation split)."""
    import keras
    import keras_tuner as kt

    from training import recipes
    from training.data.batches import steps_per_epoch
    from training.run import pipeline

    class CifarHyperModel(kt.HyperModel):
        """Trials of the training pipeline (see ``build_hypermodel``)."""

        def _trial(self, hp: Any) -> Any:
            config = base.config
            overrides = dict(config.recipe_overrides)
            overrides["lr"] = hp.Float("lr", *space.lr, sampling="log")
            overrides["weight_decay"] = hp.Float(
                "weight_decay", *space.weight_decay, sampling="log"
            )
            overrides["batch_size"] = hp.Choice("batch_size", list(space.batch_sizes))
            recipe = recipes.get_recipe(config.recipe, config.recipe_family, **overrides)
            if base.model is None:  # a trained network fine-tuned: no model to choose
                return dataclasses.replace(
                    base,
                    config=dataclasses.replace(config, recipe_overrides=overrides),
                    recipe=recipe,
                )
            name = hp.Choice("model", list(space.models))
            unit = hp.Choice("unit", list(space.units)) if space.units else ""
            width = hp.Choice("width_multiplier", list(space.widths)) if space.widths != (1,) else 1
            info, options = models[name, unit or config.model_options.get("unit", ""), width]
            return dataclasses.replace(
                base,
                config=dataclasses.replace(config, model=name, recipe_overrides=overrides),
                recipe=recipe,
                model=info,
                model_options=options,
            )

        def build(self, hp):
            trial = self._trial(hp)
            runtime.check_batch(trial.recipe.batch_size)
            schedule = self._schedule(trial, trial.recipe.epochs or 1)
            return pipeline.compile_model(trial, runtime, schedule, source=arrays)

        def _schedule(self, trial: Any, epochs: int) -> recipes.Schedule:
            steps = steps_per_epoch(arrays.num_train, trial.recipe.batch_size)
            return recipes.plan(
                trial.recipe.overridden(epochs=epochs),
                model=trial.model,
                num_examples=arrays.num_train,
                steps_per_epoch=steps,
            )

        def fit(self, hp, model, *args, epochs: int = 1, callbacks=None, verbose=0, **kwargs):
            trial = self._trial(hp)
            recipe = trial.recipe
            schedule = self._schedule(trial, epochs)
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


def holdout(arrays: Any, fraction: float) -> Any:
    """``arrays`` (a ``training.data.batches.TrainingData``) with ``fraction`` of the training images as its
    test split: CIFAR's last images, or part of each class of a folder of images."""
    return arrays.holdout(fraction)


def search(
    base: Any,
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
    from keras_preact.command_line import UserError
    from training.run import pipeline, strategy
    from training.run import run_folder as rundir

    resolved = pipeline.check(base)
    if resolved.model is None:
        if space.units or space.widths != (1,):
            raise UserError(
                "--units and --widths choose new networks, not one given with --weights"
            )
        models = {}
    else:
        models = space.resolve(dict(base.model_options))
    if not (math.isfinite(validation_split) and 0 < validation_split < 1):
        raise UserError(f"--validation-split must be in (0, 1), got {validation_split}")
    if tuner not in TUNERS:
        raise UserError(f"unknown tuner {tuner!r}: choose one of {', '.join(TUNERS)}")
    if resolved.strategy.name == "multi_worker":
        raise UserError("the tuner runs on one machine: use default, one_device or mirrored")
    if min(max_trials, epochs, max_epochs) < 1:
        raise UserError("--max-trials, --epochs and --max-epochs must be at least 1")
    directory = Path(output).expanduser().absolute()
    rundir.check_writable(directory)
    settings = {
        "config": base.identity(),
        "space": dataclasses.asdict(space),
        "tuner": tuner,
        "epochs": epochs if tuner != "hyperband" else None,
        "max_epochs": max_epochs if tuner == "hyperband" else None,
        "max_trials": max_trials if tuner != "hyperband" else None,
        "validation_split": validation_split,
        "seed": seed,
    }
    settings = json.loads(json.dumps(settings))  # tuples as lists, as they come back from disk
    saved = directory / "search.json"
    if saved.is_file():
        if rundir.read_json(saved) != settings:
            raise UserError(
                f"--output {directory} holds a search with other settings: re-run its command to "
                "resume it, or choose another --output"
            )
    elif directory.exists() and any(directory.iterdir()):
        raise UserError(f"--output {directory} is not empty and holds no search: choose another")
    rundir.write_json(saved, settings)

    import keras_tuner as kt

    runtime = strategy.create(resolved.strategy)
    pipeline.seed_everything(seed, deterministic=False)
    arrays = holdout(pipeline.load_data(resolved), validation_split)
    hypermodel = build_hypermodel(resolved, space, models, runtime, arrays, seed)
    common = dict(
        objective=kt.Objective("val_accuracy", "max"),
        directory=str(directory),
        project_name="search",
        overwrite=False,
        seed=seed,
        distribution_strategy=runtime.strategy,
        max_consecutive_failed_trials=3,
    )
    if tuner == "hyperband":
        searcher = kt.Hyperband(hypermodel, max_epochs=max_epochs, **common)
    elif tuner == "bayesian":
        searcher = kt.BayesianOptimization(hypermodel, max_trials=max_trials, **common)
    else:
        searcher = kt.RandomSearch(hypermodel, max_trials=max_trials, **common)
    with runtime.scope():
        searcher.search(epochs=epochs, verbose=1 if sys.stdout.isatty() else 0)
    best = [
        {
            "trial": trial.trial_id,
            "val_accuracy": trial.score,
            "hyperparameters": trial.hyperparameters.values,
            "command": _command(base, trial.hyperparameters.values),
        }
        for trial in searcher.oracle.get_best_trials(num_trials=5)
    ]
    rundir.write_json(directory / "best_trials.json", best)
    searcher.results_summary(num_trials=min(5, len(best)))
    return best


def _command(base: Any, values: dict[str, Any]) -> str:
    """The ``python -m training.cifar`` (or ``training.images``) command that trains a trial's
    choice with the full recipe."""
    if base.images is None:
        parts = ["python -m training.cifar", f"--model {values.get('model', base.model)}"]
        parts += [f"--dataset {base.dataset}", f"--recipe {base.recipe}"]
    else:
        parts = ["python -m training.images", f"--data {base.images.data}"]
        if base.images.weights is None:
            parts.append(f"--model {values.get('model', base.model)}")
        else:
            parts.append(f"--weights {base.images.weights}")
        parts.append(f"--recipe {base.recipe}")
        if base.images.image_size is not None:
            parts.append(f"--image-size {base.images.image_size}")
    if "unit" in values:
        parts.append(f"--unit {values['unit']}")
    if "width_multiplier" in values:
        parts.append(f"--model-option width_multiplier={values['width_multiplier']}")
    parts += [f"--lr {values['lr']:.4g}", f"--weight-decay {values['weight_decay']:.3g}"]
    parts.append(f"--batch-size {values['batch_size']}")
    return " ".join(parts)


def add_search_options(p: argparse.ArgumentParser) -> None:
    """The tuner, its budget and the search space."""
    g = p.add_argument_group("search")
    g.add_argument("--tuner", default="random", help=f"{', '.join(TUNERS)} (default: random)")
    g.add_argument("--output", default="runs/tune", help="tuner directory (default: runs/tune)")
    g.add_argument("--max-trials", type=int, default=10, help="trial budget (random, bayesian)")
    g.add_argument("--epochs", type=int, default=10, help="epochs per trial (random, bayesian)")
    g.add_argument(
        "--max-epochs", type=int, default=27, help="Hyperband's longest trial, in epochs"
    )
    g.add_argument(
        "--validation-split",
        type=options.finite_float,
        default=0.1,
        help="fraction of the training images held out to score trials (default 0.1: 45k/5k)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of the tuner and of the trials")
    for name, default in (("lr", SearchSpace.lr), ("weight-decay", SearchSpace.weight_decay)):
        g.add_argument(
            f"--{name}-range",
            type=options.comma_separated(options.finite_float),
            default=default,
            metavar="LOW,HIGH",
            help=f"{name.replace('-', ' ')} range, sampled log-uniformly "
            f"(default: {default[0]:g},{default[1]:g})",
        )
    g.add_argument(
        "--batch-sizes",
        type=options.comma_separated(int),
        default=SearchSpace.batch_sizes,
        metavar="B,B",
        help="global batch sizes to choose from (default: "
        f"{','.join(map(str, SearchSpace.batch_sizes))})",
    )
    g.add_argument(
        "--models",
        type=options.comma_separated(str),
        metavar="M,M",
        help="models to choose from, e.g. resnet20v1,resnet32v1 or resnet8v2,resnet14v2 "
        "(default: resnet20v1; not with --weights, whose network is the one trained)",
    )
    g.add_argument(
        "--units",
        type=options.comma_separated(str),
        default=SearchSpace.units,
        metavar="U,U",
        help=",".join(UNITS),
    )
    g.add_argument(
        "--widths",
        type=options.comma_separated(int),
        default=SearchSpace.widths,
        metavar="W,W",
        help="width multipliers",
    )


def tune(args: argparse.Namespace) -> int:
    """The stage: check the search space, run (or resume) the search, print the best trial's
    command."""
    for pair in (args.lr_range, args.weight_decay_range):
        if len(pair) != 2:
            raise UserError(f"a range is LOW,HIGH, got {','.join(map(str, pair))}")
    if args.weights and args.models:
        raise UserError("--models chooses new networks: --weights fine-tunes the one it holds")
    space = SearchSpace(
        lr=args.lr_range,
        weight_decay=args.weight_decay_range,
        batch_sizes=args.batch_sizes,
        models=tuple(m.lower() for m in args.models or SearchSpace.models),
        units=args.units,
        widths=args.widths,
    )
    # A new network: the first model to choose from; a fine-tuned one: the network --weights holds.
    model = {} if args.weights else {"model": space.models[0]}
    base = options.train_config(args, output=args.output, seed=args.seed, verbose="quiet", **model)
    best = search(
        base,
        space,
        tuner=args.tuner,
        output=args.output,
        max_trials=args.max_trials,
        epochs=args.epochs,
        max_epochs=args.max_epochs,
        validation_split=args.validation_split,
        seed=args.seed,
    )
    if best:
        print(f"best: validation accuracy {best[0]['val_accuracy']:.4f}: {best[0]['command']}")
    return 0


COMMAND = Command(
    "tune",
    description="Search the learning rate, weight decay, batch size and model depth/unit/width "
    "with keras-tuner over the training pipeline; trials are scored on a validation split held "
    "out from the training images.",
    examples=EXAMPLES,
    groups=(
        add_search_options,
        partial(options.add_model_data, model=False),
        partial(options.add_image_data, required=False, shared=False),
        partial(options.add_recipe, tuned=("epochs", "batch_size", "lr", "weight_decay")),
        options.add_distribution,
    ),
    stage=tune,
)
build_parser, main = COMMAND.build_parser, COMMAND.main

if __name__ == "__main__":
    COMMAND.exit()
