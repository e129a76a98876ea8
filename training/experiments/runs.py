"""An experiment's runs: plan them (checked, before anything is written), then train them.

``plan`` turns an experiment of ``training.experiments.papers``, a scale and the command-line
choices into one ``training.run.pipeline`` run per network, each in its own folder under the
output directory, and checks names, settings, data and what each folder holds before anything
trains: a finished run is reused, an unfinished one resumes, a folder holding anything else is
refused (``training.run.run_folder.reused_state``). ``train_here`` trains the runs one after
another in this process; ``train_on_devices`` one per GPU, each in its own ``python -m
training.reproduce ... --runs NAME`` process that sees only its GPU.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras

from keras_preact.command_line import UserError
from training import recipes
from training.data.cifar.sources import load_arrays
from training.experiments import papers as ex
from training.run import pipeline
from training.run import run_folder as rundir
from training.run.callbacks import TrainingDiverged
from training.run.pipeline import Resolved, TrainConfig
from training.run.strategy import normalize_device


@dataclass(frozen=True)
class Choices:
    """What the command line chose besides the experiment (``None``: the scale's default)."""

    scale: str = "paper"
    output: str | None = None
    runs: tuple[str, ...] = ()
    data_source: str | None = None
    data_dir: str | None = None
    verify_checksums: bool = True
    seed: int | None = None
    epochs: int | None = None
    verbose: str = "auto"
    native_logs: bool = False


@dataclass(frozen=True)
class PlannedRun:
    """One run of the campaign: its definition, its training settings resolved once by
    ``training.run.pipeline.check``, and what its folder holds now (``new``, ``unfinished`` or
    ``finished``)."""

    run: ex.Run
    resolved: Resolved
    state: str

    @property
    def config(self) -> TrainConfig:
        """The run's training configuration."""
        return self.resolved.config

    @property
    def path(self) -> Path:
        """The run folder."""
        return Path(self.config.output)


@dataclass(frozen=True)
class Campaign:
    """A planned experiment: the runs it trains (``selected``, in table order) and every run of the
    experiment at this scale (``every``: the table shows them all, with results where there are)."""

    experiment: ex.Experiment
    scale: ex.Scale
    choices: Choices
    output: Path
    selected: tuple[PlannedRun, ...]
    every: tuple[PlannedRun, ...]
    left_out: dict[str, str] = field(default_factory=dict)

    @property
    def on_sample(self) -> bool:
        """Whether the runs train on the embedded sample."""
        return self.scale.sample and self.choices.data_source is None

    def to_train(self) -> list[PlannedRun]:
        """The selected runs that are not finished yet."""
        return [p for p in self.selected if p.state != "finished"]


def default_output(experiment: str, scale: str) -> str:
    """``runs/reproduce/<experiment>`` at the paper scale, ``runs/reproduce/<experiment>-<scale>``
    otherwise, so that the two scales never share run folders."""
    return f"runs/reproduce/{experiment}" + ("" if scale == "paper" else f"-{scale}")


def get_experiment(name: str) -> ex.Experiment:
    """The experiment called ``name``, or ``UserError`` naming the choices."""
    return _named(ex.EXPERIMENTS, name, "experiment")


def _named(table: dict, name: str, what: str):
    if name not in table:
        raise UserError(f"unknown {what} {name!r}: choose one of {', '.join(table)}")
    return table[name]


def unavailable(run: ex.Run, scale: ex.Scale, choices: Choices) -> str | None:
    """Why ``run`` cannot train at ``scale`` with the data chosen (``None`` if it can)."""
    if scale.sample and choices.data_source is None and run.dataset != "cifar10":
        return (
            f"trains on {run.dataset}, and the embedded sample is CIFAR-10: give --data-source "
            f"with {run.dataset} to train it at the {scale.name} scale"
        )
    return None


def train_config(
    experiment: ex.Experiment, run: ex.Run, scale: ex.Scale, choices: Choices, output: Path
) -> TrainConfig:
    """The ``TrainConfig`` of one run (not checked: ``plan`` checks it)."""
    sample = scale.sample and choices.data_source is None
    overrides = dict(scale.overrides)
    if scale.name == "paper" and experiment.warmup != "auto":
        overrides["gated_warmup"] = experiment.warmup
    if choices.epochs is not None:
        overrides.pop("iterations", None)
        overrides["epochs"] = choices.epochs
    return TrainConfig(
        model=run.model,
        model_options=dict(run.options),
        dataset="cifar10-sample" if sample else run.dataset,
        data_source=None if sample else choices.data_source,
        data_dir=None if sample else choices.data_dir,
        verify_checksums=choices.verify_checksums,
        augment=scale.augment,
        recipe=scale.recipe,
        recipe_overrides=overrides,
        seed=scale.seed if choices.seed is None else choices.seed,
        output=str(output / run.name),
        verbose=choices.verbose,
    )


def selection(experiment: ex.Experiment, scale: ex.Scale, choices: Choices) -> list[ex.Run]:
    """The runs to train: those named by ``--runs`` (``UserError`` for an unknown or unavailable
    one), else every run at the paper scale and the ``quick`` ones at a smaller scale."""
    unknown = [name for name in choices.runs if name not in experiment.run_names]
    if unknown:
        raise UserError(
            f"{experiment.name} has no run {unknown[0]!r}: choose from "
            f"{', '.join(experiment.run_names)}"
        )
    for run in map(experiment.run, choices.runs):
        why = unavailable(run, scale, choices)
        if why:
            raise UserError(f"run {run.name} {why}")
    if choices.runs:
        return [experiment.run(name) for name in dict.fromkeys(choices.runs)]
    return [
        run
        for run in experiment.runs
        if (scale.name == "paper" or run.quick) and unavailable(run, scale, choices) is None
    ]


def plan(experiment_name: str, choices: Choices, *, load_data: bool = True) -> Campaign:
    """Plan and check the campaign (``UserError`` with one line for anything wrong, before any file
    is written): names, settings, every run folder, and (with ``load_data``) that the data of the
    runs still to train loads."""
    experiment = get_experiment(experiment_name)
    scale: ex.Scale = _named(ex.SCALES, choices.scale, "scale")
    if choices.epochs is not None and choices.epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {choices.epochs}")
    if scale.sample and choices.data_dir and choices.data_source is None:
        raise UserError("--data-dir applies with --data-source tfds, not to the embedded sample")
    output = Path(choices.output or default_output(experiment.name, scale.name)).expanduser()
    output = output.absolute()
    rundir.check_writable(output)
    picked = {run.name for run in selection(experiment, scale, choices)}
    every, left_out = [], {}
    for run in experiment.runs:
        config = train_config(experiment, run, scale, choices, output)
        resolved = pipeline.check(config)  # names and options, validated without building
        state = rundir.reused_state(run.name, Path(config.output), config.identity())
        every.append(PlannedRun(run, resolved, state))
        why = unavailable(run, scale, choices)
        if why:
            left_out[run.name] = why
    selected = tuple(p for p in every if p.run.name in picked)
    campaign = Campaign(experiment, scale, choices, output, selected, tuple(every), left_out)
    if load_data:
        check_data(campaign)
    return campaign


def check_data(campaign: Campaign) -> None:
    """Load each dataset the remaining runs need once (``UserError`` if it cannot be)."""
    needed = {
        (p.config.dataset, p.config.data_source, p.config.data_dir) for p in campaign.to_train()
    }
    for dataset, source, data_dir in sorted(needed, key=str):
        load_arrays(dataset, source, data_dir, verify_checksums=campaign.choices.verify_checksums)


def schedule(resolved: Resolved, images: int | None = None) -> recipes.Schedule:
    """The ``training.recipes.Schedule`` a run follows on ``images`` training images (default: the
    official size of its dataset; the pipeline plans the same from the images it loads)."""
    return resolved.schedule(images or ex.TRAIN_IMAGES[resolved.config.dataset])


def images_seen(resolved: Resolved) -> int:
    """Images one run sees in training: whole epochs of full batches."""
    return schedule(resolved).total_steps * resolved.recipe.batch_size


def train_here(campaign: Campaign, after_each: Callable[[], None]) -> list[str]:
    """Train the remaining runs one after another in this process; ``after_each`` runs after every
    run (it redraws the table). Returns the runs that diverged."""
    remaining = campaign.to_train()
    diverged = []
    for i, planned in enumerate(remaining, start=1):
        verb = "resuming" if planned.state == "unfinished" else "training"
        print(f"[{i}/{len(remaining)}] {verb} {planned.run.name} ({planned.run.label})", flush=True)
        try:
            metrics = pipeline.train(planned.resolved)
        except TrainingDiverged as e:
            print(f"{planned.run.name}: {e}", flush=True)
            diverged.append(planned.run.name)
        else:
            error = metrics.get("final_test_error")
            if error is not None:
                print(f"{planned.run.name}: test error {100 * error:.2f} %", flush=True)
        keras.backend.clear_session()
        after_each()
    return diverged


def count_gpus() -> int:
    """NVIDIA GPUs on this machine, as the driver lists them (nothing is started on them)."""
    listed = Path("/proc/driver/nvidia/gpus")
    if listed.is_dir():
        return len(list(listed.iterdir()))
    try:
        found = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return (
        0 if found.returncode else sum(line.startswith("GPU ") for line in found.stdout.split("\n"))
    )


def check_devices(specs: Sequence[str]) -> list[int]:
    """The GPU indices of ``--devices`` (GPU indices or ``gpu:N``), without looking for the GPUs;
    ``UserError`` for anything else, or a GPU named twice."""
    indices: list[int] = []
    for spec in specs:
        kind, index = normalize_device(spec)
        if kind != "gpu":
            raise UserError(f"--devices takes GPUs (0, 1 or gpu:0, ...), got {spec!r}")
        if index in indices:
            raise UserError(f"--devices names GPU {index} twice")
        indices.append(index)
    return indices


def resolve_devices(specs: Sequence[str], available: int) -> list[str]:
    """``--devices`` (GPU indices or ``gpu:N``) as ``CUDA_VISIBLE_DEVICES`` values; ``UserError``
    for a device that is not there. Indices count the GPUs this process may see: ``available``
    ones, or those ``CUDA_VISIBLE_DEVICES`` already names."""
    indices = check_devices(specs)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = None
    if visible is not None:  # CUDA stops at the first invalid entry
        entries = (entry.strip() for entry in visible.split(","))
        ids = list(itertools.takewhile(lambda e: e and not e.startswith("-"), entries))
        available = len(ids)
    resolved = []
    for index in indices:
        if index >= available:
            seen = f"{available} GPU{'s' if available != 1 else ''}" if available else "no GPU"
            raise UserError(f"--devices names GPU {index}, and this machine has {seen}")
        physical = ids[index] if ids is not None else str(index)
        if physical in resolved:
            raise UserError(f"--devices names GPU {index} twice")
        resolved.append(physical)
    return resolved


def child_command(campaign: Campaign, run: str) -> list[str]:
    """The command that trains one run of the campaign, and nothing else."""
    c = campaign.choices
    program = [sys.executable, "-m", "training.reproduce", campaign.experiment.name]
    options = {"--scale": c.scale, "--output": campaign.output, "--runs": run, "--no-table": True}
    options |= {"--verbose": "line", "--data-source": c.data_source, "--data-dir": c.data_dir}
    options |= {"--no-verify-checksums": not c.verify_checksums, "--seed": c.seed}
    options |= {"--epochs": c.epochs, "--native-logs": c.native_logs}
    return rundir.command_line(program, options)


def _pump(stream, prefix: str) -> None:
    for line in stream:
        print(f"[{prefix}] {line}", end="", flush=True)


def train_on_devices(
    campaign: Campaign, devices: Sequence[str], after_each: Callable[[], None]
) -> list[str]:
    """Train the remaining runs in parallel, one process per GPU (``devices``: values of
    ``CUDA_VISIBLE_DEVICES``), each starting when a GPU becomes free. Returns the runs that failed."""
    queue = [p.run.name for p in campaign.to_train()]
    running: dict[str, tuple[subprocess.Popen, str, threading.Thread]] = {}
    failed = []
    try:
        while queue or running:
            for device in devices:
                if device not in running and queue:
                    run = queue.pop(0)
                    print(f"{run}: starting on GPU {device}", flush=True)
                    env = {**os.environ, "CUDA_VISIBLE_DEVICES": device}
                    child = subprocess.Popen(
                        child_command(campaign, run),
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        text=True,
                    )
                    pump = threading.Thread(target=_pump, args=(child.stdout, run), daemon=True)
                    pump.start()
                    running[device] = (child, run, pump)
            time.sleep(1.0)
            for device, (child, run, pump) in list(running.items()):
                if child.poll() is None:
                    continue
                pump.join()
                del running[device]
                if child.returncode != 0:
                    print(f"{run}: failed (exit status {child.returncode})", flush=True)
                    failed.append(run)
                after_each()
    finally:
        for child, _, _ in running.values():
            child.terminate()
        for child, _, _ in running.values():
            child.wait()
    return failed


def setting(campaign: Campaign) -> str:
    """What the runs trained on, for the table (plainly so when it is not the paper's setting)."""
    scale, choices = campaign.scale, campaign.choices
    parts = [f"Scale: **{scale.name}**: {scale.description}."]
    if scale.name != "paper":
        parts.append(
            "**This is not the paper's setting** (64k iterations on 50,000 images with "
            "augmentation): compare the order of the rows and the shape of the curves, not the "
            "numbers."
        )
    if campaign.on_sample:
        parts.append("Data: the embedded CIFAR-10 sample (1,000 training and 300 test images).")
    else:
        parts.append(f"Data: {choices.data_source or 'tfds'}.")
    if choices.epochs is not None:
        parts.append(f"Length: {choices.epochs} epochs per run (--epochs).")
    if scale.name == "paper" and campaign.experiment.warmup == "on":
        parts.append(
            "Warm-up: lr 0.01 until the training error is below 80 % (the v2 paper warms every "
            "CIFAR run up with lr 0.01 for its first 400 iterations)."
        )
    return " ".join(parts)


def listing(campaign: Campaign) -> str:
    """``--list``: every run, its data, its cost in images seen, and what its folder holds."""
    e, selected = campaign.experiment, {p.run.name for p in campaign.selected}
    lines = [
        f"{e.name}: {e.title} ({e.source})",
        f"scale {campaign.scale.name}: {campaign.scale.description}",
        f"output: {campaign.output}",
        "",
        f"{'run':<22} {'network':<46} {'data':<15} {'images seen':>12}  state",
    ]
    total = 0
    for p in campaign.every:
        name = p.run.name
        if name in campaign.left_out:
            cost, state = "—", f"left out: {campaign.left_out[name]}"
        else:
            seen = images_seen(p.resolved)
            cost = f"{seen:,}"
            state = {"new": "to train", "unfinished": "to resume", "finished": "finished, reused"}[
                p.state
            ]
            if name not in selected:
                state = "not selected (--runs NAME trains it)"
            elif p.state != "finished":
                total += seen
        lines.append(
            f"{name:<22} {p.run.label[:46]:<46} {p.config.dataset:<15} {cost:>12}  {state}"
        )
    for u in e.unexpressible:
        lines.append(f"{'—':<22} {u.label[:46]:<46} {u.dataset:<15} {'—':>12}  not expressible")
    lines += ["", f"to train: {total:,} images seen"]
    return "\n".join(lines)
