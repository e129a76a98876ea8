"""An experiment's runs: plan them (checked, before anything is written), then train them.

``plan`` turns an experiment of ``training.experiments.papers``, a scale and the command-line
choices into one ``training.run.pipeline`` run per network, each in its own folder; a finished
run is reused, an unfinished one resumes, a folder holding anything else is refused.
``train_here`` trains them one after another in this process; ``train_on_devices`` one per GPU,
each in a ``python -m training.reproduce ... --runs NAME`` process that sees only its GPU.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass
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
    """One run of the campaign, its settings resolved once by ``training.run.pipeline.check``,
    and what its folder holds now (``new``, ``unfinished`` or ``finished``)."""

    run: ex.Run
    resolved: Resolved
    state: str

    @property
    def config(self) -> TrainConfig:
        return self.resolved.config


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
    left_out: dict[str, str]

    def to_train(self) -> list[PlannedRun]:
        """The selected runs that are not finished yet."""
        return [p for p in self.selected if p.state != "finished"]


def get_experiment(name: str) -> ex.Experiment:
    """The experiment called ``name``, or ``UserError`` naming the choices."""
    return _named(ex.EXPERIMENTS, name, "experiment")


def _named(table: dict, name: str, what: str):
    if name not in table:
        raise UserError(f"unknown {what} {name!r}: choose one of {', '.join(table)}")
    return table[name]


def on_sample(scale: ex.Scale, choices: Choices) -> bool:
    """Whether the runs train on the embedded sample."""
    return scale.sample and choices.data_source is None


def unavailable(run: ex.Run, scale: ex.Scale, choices: Choices) -> str | None:
    """Why ``run`` cannot train at ``scale`` with the data chosen (``None`` if it can)."""
    if on_sample(scale, choices) and run.dataset != "cifar10":
        return (
            f"trains on {run.dataset}, and the embedded sample is CIFAR-10: give --data-source "
            f"with {run.dataset} to train it at the {scale.name} scale"
        )
    return None


def train_config(
    experiment: ex.Experiment, run: ex.Run, scale: ex.Scale, choices: Choices, output: Path
) -> TrainConfig:
    """The ``TrainConfig`` of one run (not checked: ``plan`` checks it)."""
    sample = on_sample(scale, choices)
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


def plan(experiment_name: str, choices: Choices, *, load_data: bool = True) -> Campaign:
    """Plan and check the campaign (``UserError`` with one line for anything wrong, before any file
    is written): names, settings, every run folder, and (with ``load_data``) that the data of the
    runs still to train loads. ``--runs`` selects the runs to train, else every run at the paper
    scale and the ``quick`` ones at a smaller scale."""
    experiment = get_experiment(experiment_name)
    scale: ex.Scale = _named(ex.SCALES, choices.scale, "scale")
    if choices.epochs is not None and choices.epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {choices.epochs}")
    if on_sample(scale, choices) and choices.data_dir:
        raise UserError("--data-dir applies with --data-source tfds, not to the embedded sample")
    suffix = "" if scale.name == "paper" else f"-{scale.name}"  # scales never share run folders
    output = Path(choices.output or f"runs/reproduce/{experiment.name}{suffix}").expanduser()
    output = output.absolute()
    rundir.check_writable(output)
    left_out = {r.name: why for r in experiment.runs if (why := unavailable(r, scale, choices))}
    for name in choices.runs:
        if name not in experiment.run_names:
            raise UserError(
                f"{experiment.name} has no run {name!r}: choose from "
                f"{', '.join(experiment.run_names)}"
            )
        if name in left_out:
            raise UserError(f"run {name} {left_out[name]}")
    picked = set(choices.runs) or {
        r.name for r in experiment.runs if scale.name == "paper" or r.quick
    } - set(left_out)
    every = []
    for run in experiment.runs:
        config = train_config(experiment, run, scale, choices, output)
        resolved = pipeline.check(config)  # names and options, validated without building
        state = rundir.reused_state(run.name, Path(config.output), config.identity())
        every.append(PlannedRun(run, resolved, state))
    selected = tuple(p for p in every if p.run.name in picked)
    campaign = Campaign(experiment, scale, choices, output, selected, tuple(every), left_out)
    needed = {
        (p.config.dataset, p.config.data_source, p.config.data_dir) for p in campaign.to_train()
    }
    for dataset, source, data_dir in sorted(needed, key=str) if load_data else ():
        load_arrays(dataset, source, data_dir, verify_checksums=choices.verify_checksums)
    return campaign


def schedule(resolved: Resolved, images: int | None = None) -> recipes.Schedule:
    """The ``training.recipes.Schedule`` a run follows on ``images`` training images (default: the
    official size of its dataset; the pipeline plans the same from the images it loads)."""
    return resolved.schedule(images or ex.TRAIN_IMAGES[resolved.config.dataset])


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
    return 0 if found.returncode else sum(s.startswith("GPU ") for s in found.stdout.splitlines())


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
    """``--devices`` as ``CUDA_VISIBLE_DEVICES`` values; ``UserError`` for a device that is not
    there. Indices count the GPUs this process may see: ``available`` ones, or those
    ``CUDA_VISIBLE_DEVICES`` already names."""
    ids = [str(index) for index in range(available)]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:  # CUDA stops at the first invalid entry
        entries = (entry.strip() for entry in visible.split(","))
        ids = list(itertools.takewhile(lambda e: e and not e.startswith("-"), entries))
    resolved: list[str] = []
    for index in check_devices(specs):
        if index >= len(ids):
            seen = f"{len(ids)} GPU{'s' if len(ids) != 1 else ''}" if ids else "no GPU"
            raise UserError(f"--devices names GPU {index}, and this machine has {seen}")
        if ids[index] in resolved:
            raise UserError(f"--devices names GPU {index} twice")
        resolved.append(ids[index])
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


def _pump(run: str, child: subprocess.Popen) -> int:
    """Print the run's lines as they come, prefixed with its name; its exit status."""
    with child:
        for line in child.stdout:
            print(f"[{run}] {line}", end="", flush=True)
    return child.returncode


def train_on_devices(
    campaign: Campaign, devices: Sequence[str], after_each: Callable[[], None]
) -> list[str]:
    """Train the remaining runs in parallel, one process per GPU (``devices``: values of
    ``CUDA_VISIBLE_DEVICES``), each starting when a GPU becomes free. Returns the runs that failed."""
    free, running, failed = list(devices), {}, []

    def collect(done) -> None:
        for future in done:
            run, device, _ = running.pop(future)
            free.append(device)
            if future.result():
                print(f"{run}: failed (exit status {future.result()})", flush=True)
                failed.append(run)
            after_each()

    with ThreadPoolExecutor(len(devices)) as pool:
        try:
            for run in (p.run.name for p in campaign.to_train()):
                if not free:
                    collect(wait(running, return_when=FIRST_COMPLETED).done)
                device = free.pop(0)
                print(f"{run}: starting on GPU {device}", flush=True)
                command = child_command(campaign, run)
                env = {**os.environ, "CUDA_VISIBLE_DEVICES": device}
                child = subprocess.Popen(
                    command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                )
                running[pool.submit(_pump, run, child)] = run, device, child
            collect(as_completed(list(running)))
        finally:
            for _, _, child in running.values():
                child.terminate()
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
    parts.append(
        "Data: the embedded CIFAR-10 sample (1,000 training and 300 test images)."
        if on_sample(scale, choices)
        else f"Data: {choices.data_source or 'tfds'}."
    )
    if choices.epochs is not None:
        parts.append(f"Length: {choices.epochs} epochs per run (--epochs).")
    if scale.name == "paper" and campaign.experiment.warmup == "on":
        parts.append(
            "Warm-up: lr 0.01 until the training error is below 80 % (the v2 paper warms every "
            "CIFAR run up with lr 0.01 for its first 400 iterations)."
        )
    return " ".join(parts)


_LISTED = {"new": "to train", "unfinished": "to resume", "finished": "finished, reused"}


def listing(campaign: Campaign) -> str:
    """``--list``: every run, its data, its cost in images seen, and what its folder holds."""
    e, selected = campaign.experiment, {p.run.name for p in campaign.selected}
    row = "{:<22} {:<46} {:<15} {:>12}  {}".format
    lines = [
        f"{e.name}: {e.title} ({e.source})",
        f"scale {campaign.scale.name}: {campaign.scale.description}",
        f"output: {campaign.output}",
        "",
        row("run", "network", "data", "images seen", "state"),
    ]
    total = 0
    for p in campaign.every:
        name = p.run.name
        if name in campaign.left_out:
            cost, state = "—", f"left out: {campaign.left_out[name]}"
        else:
            seen = schedule(p.resolved).total_steps * p.resolved.recipe.batch_size
            cost, state = f"{seen:,}", _LISTED[p.state]
            if name not in selected:
                state = "not selected (--runs NAME trains it)"
            elif p.state != "finished":
                total += seen
        lines.append(row(name, p.run.label[:46], p.config.dataset, cost, state))
    for u in e.unexpressible:
        lines.append(row("—", u.label[:46], u.dataset, "—", "not expressible"))
    lines += ["", f"to train: {total:,} images seen"]
    return "\n".join(lines)
