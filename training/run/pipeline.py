"""One training run: config -> strategy -> data -> model -> recipe -> fit -> report.

``check`` validates a ``TrainConfig`` and resolves its choices once (``Resolved``); ``prepare`` creates
the strategy, loads the data (CIFAR arrays or images: a ``TrainingData``) and builds and compiles the
model (``Prepared``); ``train`` opens the run folder, resumes from its backup, fits and writes
``metrics.json``. The commands run ``train``; benchmarks and the tuner reuse ``prepare``::

    from training.run.pipeline import TrainConfig, prepare
    prepared = prepare(TrainConfig(model="resnet20v1", dataset="cifar10-sample", recipe="demo"))
    prepared.model.fit(prepared.train_dataset(), steps_per_epoch=prepared.steps_per_epoch, epochs=1)
"""

from __future__ import annotations

import dataclasses
import functools
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import keras

import keras_preact
from keras_preact.command_line import UserError
from training import recipes
from training.choices import VERBOSITY
from training.data.batches import TrainingData, steps_per_epoch
from training.data.cifar.sources import DATASETS, DEFAULT_SOURCES, load_arrays
from training.data.images.options import CheckedImages, ImageOptions, check_recipe
from training.run import callbacks as cb
from training.run import finetune, report, strategy
from training.run import network as model_lib
from training.run import run_folder as rundir
from training.run.strategy import StrategyOptions

# Settings that do not change what a run computes, so a resumed run may change them.
_NOT_IDENTITY = ("output", "overwrite", "verbose", "backup_every", "data_dir", "verify_checksums")

_DIVERGED_HINT = (
    "Lower --lr (with float16, try bfloat16) and re-run with --overwrite or another --output."
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs. ``data_source=None``: the dataset's usual one; ``recipe_overrides``:
    ``recipes.Recipe`` fields replacing the named recipe's; ``seed=None``: a random seed (recorded in
    ``config.json``); ``deterministic`` (default: with a seed) costs XLA on TensorFlow."""

    model: str = "resnet20v1"
    model_options: dict[str, Any] = field(default_factory=dict)
    dataset: str = "cifar10"
    data_source: str | None = None
    data_dir: str | None = None
    verify_checksums: bool = True
    augment: bool = True
    recipe: str = "paper"
    recipe_overrides: dict[str, Any] = field(default_factory=dict)
    strategy: StrategyOptions = field(default_factory=StrategyOptions)
    seed: int | None = None
    deterministic: bool | None = None
    output: str = "runs/train"
    overwrite: bool = False
    backup_every: int = 500
    eval_batch_size: int | None = None
    verbose: str = "auto"
    images: ImageOptions | None = None

    @property
    def is_deterministic(self) -> bool:
        return self.seed is not None if self.deterministic is None else self.deterministic

    def identity(self) -> dict[str, Any]:
        """The settings that decide the result (stored in ``config.json``; resuming needs the same)."""
        settings = dataclasses.asdict(self)
        settings["strategy"]["devices"] = list(settings["strategy"]["devices"])
        settings["recipe_overrides"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in self.recipe_overrides.items()
        }
        settings["deterministic"] = self.is_deterministic
        if self.images is None:
            del settings["images"]  # as before image runs existed, so earlier runs still resume
            # The default spelled out, so that giving it or not is the same run.
            settings["data_source"] = self.data_source or DEFAULT_SOURCES.get(self.dataset)
        else:
            settings["images"] = self.images.identity()
        return {k: v for k, v in settings.items() if k not in _NOT_IDENTITY}

    @property
    def recipe_family(self) -> str:
        return "cifar" if self.images is None else "images"


@dataclass(frozen=True)
class Resolved:
    """A ``TrainConfig`` checked, every choice it names resolved once (``check``)."""

    config: TrainConfig
    recipe: recipes.Recipe
    model: keras_preact.ModelInfo | None  # None: fine-tunes config.images.weights
    model_options: Mapping[str, Any]  # the builder's (unit is the model's)
    strategy: strategy.StrategyPlan
    images: CheckedImages | None = None

    @property
    def paper_error(self) -> float | None:
        """The papers' CIFAR-10 test error (%) of this network, when the run trains exactly it."""
        same = self.images is None and self.config.dataset == "cifar10" and not self.model_options
        return self.model.paper_cifar10_error if same and self.model is not None else None

    def schedule(self, num_examples: int) -> recipes.Schedule:
        """The recipe planned for ``num_examples`` training images (full global batches)."""
        steps = steps_per_epoch(num_examples, self.recipe.batch_size)
        return recipes.plan(
            self.recipe, model=self.model, num_examples=num_examples, steps_per_epoch=steps
        )

    def describe_model(self) -> dict[str, Any]:
        """The network, for ``metrics.json``."""
        if self.model is None:
            return {"weights": self.config.images.weights}  # type: ignore[union-attr]
        info = self.model
        shortcut = self.model_options.get("shortcut", info.shortcut)
        return {
            **{k: getattr(info, k) for k in ("name", "family", "version", "depth", "unit")},
            "shortcut": shortcut,
        }


def check(config: TrainConfig) -> Resolved:
    """Validate what can be checked without data or devices (``UserError`` naming the first bad
    setting) and resolve the recipe, model, images' options and strategy."""
    recipe = recipes.get_recipe(config.recipe, config.recipe_family, **config.recipe_overrides)
    if config.images is None and config.dataset not in DATASETS:
        raise UserError(f"unknown dataset {config.dataset!r}: choose one of {', '.join(DATASETS)}")
    images = None if config.images is None else config.images.check()
    check_recipe(config.images, recipe)
    weights = None if config.images is None else config.images.weights
    model, model_options = None, {}
    if weights is None:
        model, model_options = model_lib.resolve(config.model, config.model_options)
    elif config.model_options:
        raise UserError("--model-option applies to new networks, not to one loaded with --weights")
    else:
        model_lib.check_weights(config.model, weights)
    plan = strategy.check(config.strategy)
    if config.backup_every < 0:
        raise UserError(f"--backup-every must be 0 (off) or more steps, got {config.backup_every}")
    if config.eval_batch_size is not None and config.eval_batch_size < 1:
        raise UserError(f"--eval-batch-size must be at least 1, got {config.eval_batch_size}")
    if config.verbose not in VERBOSITY:
        raise UserError(
            f"unknown verbosity {config.verbose!r}: choose one of {', '.join(VERBOSITY)}"
        )
    if config.seed is not None and not 0 <= config.seed < 2**31:
        raise UserError(f"--seed must be in [0, 2^31), got {config.seed}")
    return Resolved(config, recipe, model, model_options, plan, images)


def _resolved(config: TrainConfig | Resolved) -> Resolved:
    return config if isinstance(config, Resolved) else check(config)


@dataclass
class Prepared:
    """A compiled model and its data, ready to train (what ``prepare`` returns)."""

    resolved: Resolved
    runtime: strategy.Runtime
    source: TrainingData
    schedule: recipes.Schedule
    model: keras.Model
    eval_dataset: Any
    seed: int

    @property
    def config(self) -> TrainConfig:
        return self.resolved.config

    @property
    def recipe(self) -> recipes.Recipe:
        return self.resolved.recipe

    @property
    def steps_per_epoch(self) -> int:
        return self.schedule.steps_per_epoch

    def train_dataset(self, start_epoch: int = 0, skip: int = 0) -> Any:
        """The endless training dataset from batch ``skip`` of epoch ``start_epoch`` (images under
        ``multi_worker``: a function of the worker's ``InputContext``, each decoding its share)."""
        batches = functools.partial(
            self.source.train_batches,
            self.recipe,
            seed=self.seed,
            augment=self.config.augment,
            start_epoch=start_epoch,
            skip=skip,
        )
        if self.runtime.custom_loop and self.config.images is not None:
            return lambda context: batches(input_context=context)
        return batches()

    def fit(self, data: Any, **kwargs: Any) -> Any:
        """``model.fit``, or ``training.run.multi_worker_fit.fit`` where Keras' cannot run."""
        if self.runtime.custom_loop:
            # Imported here: it is TensorFlow's loop, and JAX trains without TensorFlow.
            from training.run import multi_worker_fit

            return multi_worker_fit.fit(self.model, self.runtime.strategy, data, **kwargs)
        # The dataset is already shuffled per epoch (training.data); Keras would warn about shuffle.
        return self.model.fit(data, shuffle=False, **kwargs)


def load_data(
    config: TrainConfig | Resolved, *, log: Callable[[str], None] = print
) -> TrainingData:
    """The data ``config`` names: CIFAR arrays, or its images (whose scan logs one line)."""
    resolved = _resolved(config)
    config = resolved.config
    if resolved.images is not None:
        # Imported here: the image feed is tf.data, and CIFAR runs on JAX without TensorFlow.
        from training.data.images.dataset import load

        return load(resolved.images, data_dir=config.data_dir, log=log)
    return load_arrays(
        config.dataset,
        config.data_source,
        config.data_dir,
        verify_checksums=config.verify_checksums,
    )


def prepare(
    config: TrainConfig | Resolved,
    *,
    seed: int | None = None,
    arrays: TrainingData | None = None,
) -> Prepared:
    """Create the strategy, load the data (or take ``arrays``), plan the schedule, build and compile
    the model. ``seed`` overrides ``config.seed`` (``train`` passes the run folder's)."""
    resolved = _resolved(config)
    config, recipe = resolved.config, resolved.recipe
    runtime = strategy.create(resolved.strategy)
    runtime.check_batch(recipe.batch_size)
    if seed is None:
        seed = secrets.randbits(31) if config.seed is None else config.seed
    seed_everything(seed, deterministic=config.is_deterministic)
    source = arrays
    if source is None:
        quiet = config.verbose == "quiet" or not runtime.is_chief
        log = (lambda line: None) if quiet else functools.partial(print, flush=True)
        source = load_data(resolved, log=log)
    schedule = resolved.schedule(source.num_train)
    eval_batch = config.eval_batch_size or recipe.batch_size
    runtime.check_eval(source.num_test, eval_batch)
    model = compile_model(resolved, runtime, schedule, source=source)
    evaluation = source.eval_batches(recipe, eval_batch)
    return Prepared(resolved, runtime, source, schedule, model, evaluation, seed)


def compile_model(
    resolved: Resolved,
    runtime: strategy.Runtime,
    schedule: recipes.Schedule,
    *,
    source: TrainingData,
) -> keras.Model:
    """Build (or load to fine-tune: ``training.run.finetune``) the model for ``source`` in the
    strategy's scope and compile it with the recipe's optimizer and loss."""
    recipe, config = resolved.recipe, resolved.config
    shared = dict(
        classes=source.num_classes,
        input_shape=source.input_shape,
        weight_decay=recipe.weight_decay,
        synchronized_bn=runtime.sync_bn,
    )
    with runtime.scope(), runtime.dtype_policy():
        if resolved.model is None:
            model = finetune.from_file(
                config.images.weights,  # type: ignore[union-attr]
                freeze=recipe.freeze,
                model=config.model,
                normalization=resolved.images.normalization,  # type: ignore[union-attr]
                **shared,
            )
        else:
            model = model_lib.build_model(
                resolved.model, resolved.model_options, preprocessing=source.preprocessing, **shared
            )
        model.compile(
            optimizer=recipes.make_optimizer(
                recipe, schedule, mixed_precision=config.strategy.mixed_precision
            ),
            loss=recipes.make_loss(recipe),
            metrics=["accuracy"],
            jit_compile=runtime.jit_compile(),
        )
    return model


def seed_everything(seed: int, *, deterministic: bool) -> None:
    keras.utils.set_random_seed(seed)
    if deterministic and keras.backend.backend() == "tensorflow":
        # Imported here: only on the TensorFlow backend (JAX trains without TensorFlow).
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def train(config: TrainConfig | Resolved) -> dict[str, Any]:
    """Train (or resume) the run and return its ``metrics.json`` content (``UserError`` for bad
    input, ``callbacks.TrainingDiverged`` when the loss becomes NaN)."""
    started = time.perf_counter()
    resolved = _resolved(config)
    config = resolved.config
    # Only the chief writes the run; another multi_worker process keeps just its own resume state.
    worker = resolved.strategy.worker_index
    if worker == 0:
        run = rundir.open_run(config.output, config.identity(), overwrite=config.overwrite)
    else:
        run = rundir.open_worker_dir(config.output, config.identity(), worker)
    if run.resuming and (run.path / rundir.METRICS).is_file():
        # A replacement that finished but was not swapped in yet: only the swap is left.
        run.finish()
        return rundir.read_json(run.final / rundir.METRICS)
    prepared = prepare(resolved, seed=run.config["seed"])
    state = {}
    if run.resuming:  # the newest readable backup, or UserError when none can be read
        with prepared.runtime.scope():
            state = cb.restore(run.backup_dir, prepared.model) or {}
    run.claim()  # only now: a run that fails its checks or cannot load its data leaves nothing

    schedule, runtime = prepared.schedule, prepared.runtime
    step = min(int(state.get("step", 0)), schedule.total_steps)
    spe = schedule.steps_per_epoch
    report.trim_history(run.file(rundir.HISTORY), step // spe)  # epochs to be trained again go
    session = _Session(prepared, run, state, started)
    verbose, line = _verbosity(config.verbose, runtime.is_chief)
    note = recipes.compression_note(prepared.recipe, schedule, family=config.recipe_family)
    if note and (verbose or line):
        print(note, flush=True)
    if line and step:
        print(
            f"resuming {run.final} at epoch {step // spe + 1}, batch {step % spe + 1}", flush=True
        )
    if runtime.is_chief:
        names = "".join(f"{name}\n" for name in prepared.source.label_names)
        rundir.write_bytes(run.file(rundir.LABELS), names.encode())
    callbacks = session.callbacks(step, print_line=line, progress_bar=verbose == 1)
    with keras_preact.deep_graph_recursion(), runtime.scope():
        for initial, end, steps, skip in _phases(step, spe, schedule.epochs):
            prepared.fit(
                prepared.train_dataset(start_epoch=initial, skip=skip),
                epochs=end,
                steps_per_epoch=steps,
                initial_epoch=initial,
                validation_data=prepared.eval_dataset,
                callbacks=callbacks,
                verbose=verbose,
            )
    if not runtime.is_chief:
        run.discard()
        return {}
    metrics = session.metrics()
    rundir.write_json(run.file(rundir.METRICS), metrics)
    run.finish()
    return metrics


def _verbosity(mode: str, chief: bool) -> tuple[int, bool]:
    """``(keras verbose, print one line per epoch)``."""
    if not chief or mode == "quiet":
        return 0, False
    if mode == "auto":
        mode = "bar" if sys.stdout.isatty() else "line"
    return (1, False) if mode == "bar" else (0, True)


def _phases(step: int, steps_per_epoch: int, epochs: int) -> list[tuple[int, int, int, int]]:
    """``(initial_epoch, epochs, steps_per_epoch, skip)`` of the ``fit`` calls from global ``step``:
    the rest of a partly trained epoch, then whole epochs."""
    epoch, skip = divmod(step, steps_per_epoch)
    phases = []
    if skip:
        phases.append((epoch, epoch + 1, steps_per_epoch - skip, skip))
        epoch += 1
    if epoch < epochs:
        phases.append((epoch, epochs, steps_per_epoch, 0))
    return phases


class _Session:
    """A session of a run (from the backup ``state``, ``{}`` when new): callbacks, backups, report."""

    def __init__(
        self, prepared: Prepared, run: rundir.RunDir, state: dict[str, Any], started: float
    ):
        self.prepared, self.run, self.started = prepared, run, started
        self.elapsed_before = float(state.get("wall_seconds", 0.0))
        schedule = prepared.schedule
        self.controller = recipes.LearningRateController(
            schedule, state.get("lr", {"step": state.get("step", 0)})
        )
        self.epoch_means = cb.EpochMeans(schedule.steps_per_epoch, state.get("epoch_means"))
        self.saver = cb.SaveModels(
            run.file(rundir.BEST), run.file(rundir.LAST), **state.get("models", {})
        )

    def wall_seconds(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def backup_extra(self, step: int) -> dict[str, Any]:
        return {
            "lr": self.controller.state(step),
            "epoch_means": self.epoch_means.state(step),
            "models": self.saver.state(),
            "wall_seconds": self.wall_seconds(),
        }

    def callbacks(
        self, step: int, *, print_line: bool, progress_bar: bool
    ) -> list[keras.callbacks.Callback]:
        """In epoch-end order: means and statistics first, the backup last (after every output)."""
        prepared, run = self.prepared, self.run
        schedule, config = prepared.schedule, prepared.config
        stats = cb.EpochStats(
            global_batch=prepared.recipe.batch_size, epochs=schedule.epochs, print_line=print_line
        )
        callbacks = [self.epoch_means, stats, cb.StopOnNaN(hint=_DIVERGED_HINT)]
        if progress_bar:
            callbacks.append(cb.ProgressBar())
        if schedule.needs_controller:
            callbacks.append(self.controller)
        # Every multi_worker process saves the models (saving runs collectives); the others write
        # them into their own scratch folder, deleted at the end.
        callbacks.append(self.saver)
        if prepared.runtime.is_chief:
            history = run.file(rundir.HISTORY)
            callbacks.append(keras.callbacks.CSVLogger(str(history), append=True))
            # Keras' TensorBoard callback writes through tf.summary; JAX trains without TensorFlow.
            if strategy.tensorflow_installed():
                callbacks.append(cb.EpochTensorBoard(run.file(rundir.TENSORBOARD)))
            else:
                print(
                    "note: TensorFlow is not installed, so no TensorBoard logs "
                    "(history.csv and curves.png have the same curves)",
                    file=sys.stderr,
                )
            title = f"{config.model} on {prepared.source.name} ({config.recipe})"
            callbacks.append(
                report.PlotCurves(
                    report.read_history(history),
                    schedule.steps_per_epoch,
                    run.file(rundir.CURVES),
                    title,
                )
            )
        backup = cb.Backup(
            run.backup_dir,
            steps_per_epoch=schedule.steps_per_epoch,
            every=config.backup_every,
            step=step,
            extra=self.backup_extra,
            hint=_DIVERGED_HINT,
        )
        return [*callbacks, backup]

    def metrics(self) -> dict[str, Any]:
        prepared = self.prepared
        schedule = prepared.schedule
        gated = schedule.gated_lr is not None
        return report.summarize(
            report.read_history(self.run.file(rundir.HISTORY)),
            steps_per_epoch=schedule.steps_per_epoch,
            global_batch=prepared.recipe.batch_size,
            wall_seconds=self.wall_seconds(),
            paper_error=prepared.resolved.paper_error,
            config={
                **self.run.config,
                "recipe_resolved": dataclasses.asdict(prepared.recipe),
                "model_resolved": prepared.resolved.describe_model(),
                "schedule": schedule.describe(),
                "runtime": prepared.runtime.describe(),
                "data": prepared.source.describe(),
                "gated_warmup_ended_at_step": self.controller.gate_opened_at if gated else None,
            },
        )
