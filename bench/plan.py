"""What a run measures, in which order, grouped into worker processes."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from bench.tasks import STAGE_IMPLS, Task
from bench.variants import get_variant

# The models per stage; GPU runs train the two deepest networks too.
DEFAULT_MODELS: dict[str, tuple[str, ...]] = {
    "accuracy": ("ResNet20V1",),
    "train": ("ResNet20V1", "ResNet56V1", "ResNet164V2"),
    "profile": ("ResNet20V1", "ResNet56V1", "ResNet164V2"),
    "infer": ("ResNet20V1", "ResNet164V2"),
}
GPU_TRAIN_MODELS = ("ResNet20V1", "ResNet56V1", "ResNet110V1", "ResNet164V2", "ResNet1001V2")
REDUCED_MODEL = "ResNet8V1"
# Order matters: accuracy writes the recipe PyTorch replays and the models inference reuses;
# keras and pytorch inference write the ONNX files onnxruntime measures.
STAGE_ORDER = ("parity", "accuracy", "train", "profile", "infer")
PROCESS_ORDER = ("parity", "keras", "torch", "onnxruntime")  # with isolate="framework"
ISOLATION = ("task", "framework")
# How the training contenders of one model are timed: "turns" (warm workers taking turns window by
# window, see bench.turns; the default on the CPU) or "sequential" (one after the other).
PAIRING = ("turns", "sequential")
TURNS = "turns"  # Job.process of a turn group


@dataclasses.dataclass
class Job:
    """Tasks that run one after the other in one worker process."""

    process: str
    tasks: list[Task]

    def describe(self) -> str:
        """Its tasks, for messages."""
        return "; ".join(t.describe() for t in self.tasks)


def plan_tasks(
    stages: Sequence[str],
    models: dict[str, Sequence[str]],
    impls: Sequence[str] | None,
    variants: Sequence[str] = (),
) -> list[Task]:
    """The tasks of the stages, in dependency order; ``impls`` filters implementations (None: all).

    A parity check of every model comes first, before anything is timed. Each profiling variant
    adds a training task per model and implementation it applies to, after the default ones.
    """
    tasks: list[Task] = []
    all_models = list(dict.fromkeys(m for stage in stages for m in models.get(stage, ())))
    tasks += [Task("parity", "all", m) for m in all_models]
    for stage in STAGE_ORDER[1:]:
        if stage not in stages:
            continue
        for model in models[stage]:
            for impl in STAGE_IMPLS[stage]:
                if impls is None or impl in impls:
                    tasks.append(Task(stage, impl, model))
    if "train" in stages:
        for name in variants:
            for model in models["train"]:
                for impl in get_variant(name).impls:
                    if impls is None or impl in impls:
                        tasks.append(Task("train", impl, model, name))
    return tasks


def group_jobs(tasks: list[Task], isolate: str, pairing: str = "sequential") -> list[Job]:
    """One process per task, or one per framework (keras, torch, onnxruntime) in dependency order.

    Grouped by framework, the parity checks run first in the Keras process (which then also
    imports PyTorch, but only builds a model with it): one process start less. A profiling variant
    and the profile stage change their process's environment, so each gets a process of its own.

    With ``pairing="turns"`` the training tasks of each model form one turn group instead (a job
    whose tasks each get a process and run together, see `bench.turns`), at the training stage's
    place (before inference) or, grouped by framework, last: no other stage depends on them.
    """
    turn_groups: dict[str, Job] = {}
    if pairing == TURNS:
        for t in tasks:
            if t.stage == "train":
                turn_groups.setdefault(t.model, Job(TURNS, [])).tasks.append(t)
        tasks = [t for t in tasks if t.stage != "train"]
    if isolate == "task":
        jobs = [Job(t.process, [t]) for t in tasks]
        if turn_groups:  # at the training stage's place: before inference
            first_infer = next((i for i, t in enumerate(tasks) if t.stage == "infer"), len(jobs))
            jobs[first_infer:first_infer] = list(turn_groups.values())
        return jobs
    by_process = {p: Job(p, []) for p in PROCESS_ORDER if p != "parity"}
    for t in tasks:
        if not t.own_process:
            by_process["keras" if t.process == "parity" else t.process].tasks.append(t)
    own = [Job(t.process, [t]) for t in tasks if t.own_process]
    return [j for j in by_process.values() if j.tasks] + own + list(turn_groups.values())
