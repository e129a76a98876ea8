"""What a run measures, in which order, grouped into worker processes."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from bench.architectures import get_architecture
from bench.feed_speed import FEED_MODEL
from bench.tasks import STAGE_IMPLS, TURN_STAGES, Task
from bench.variants import get_variant

# The models each stage measures by default; GPU runs train the two deepest networks too.
# ResNet50V1 (at 224x224, from JPEG files) trains when asked for (--models ResNet50V1); it is a
# default of the inference stage (at 224x224, random weights).
DEFAULT_MODELS: dict[str, tuple[str, ...]] = {
    "accuracy": ("ResNet20V1",),
    "feed": (FEED_MODEL,),
    "train": ("ResNet20V1", "ResNet56V1", "ResNet164V2"),
    "profile": ("ResNet20V1", "ResNet56V1", "ResNet164V2"),
    "infer": ("ResNet20V1", "ResNet50V1"),  # ResNet50V1 at 224x224
}
GPU_TRAIN_MODELS = ("ResNet20V1", "ResNet56V1", "ResNet110V1", "ResNet164V2", "ResNet1001V2")
REDUCED_MODEL = "ResNet8V1"
REDUCED_IMAGE_MODEL = "ResNet18V1"  # at a small image size in the reduced mode
IMAGE_STAGES = ("train", "infer")  # the stages that take the ImageNet networks
# Contenders an ImageNet network has not: no plain Keras model of them; torch.compile trains the
# CIFAR networks only (its compile of a 224x224 training step is minutes on two cores).
IMAGENET_LEFT_OUT = {"train": ("plain-keras", "pytorch-compile")}
# Order matters: accuracy writes the recipe PyTorch replays and the models inference reuses;
# keras and pytorch inference write the ONNX files onnxruntime measures.
STAGE_ORDER = ("parity", "accuracy", "feed", "train", "profile", "infer")
PROCESS_ORDER = ("parity", "keras", "torch", "onnxruntime", "openvino")  # isolate="framework"
ISOLATION = ("task", "framework")
# How the training contenders of one model are timed: "turns" (warm workers taking turns window by
# window, see bench.turns; the default on the CPU) or "sequential" (one after the other).
PAIRING = ("turns", "sequential")
TURNS = "turns"  # Job.process of a turn group
# Every contender of a turn group holds its model at once: seven ResNet-164V2 contenders needed
# more than 24 GiB. Bigger groups are split (see split_turn_group).
MAX_CONTENDERS = 5


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

    A parity check of every network comes first, before anything is timed (the feed stage trains
    none). Each profiling variant adds a training task per CIFAR model and implementation it
    applies to, after the default ones. The ImageNet networks have no plain Keras model.
    """
    tasks: list[Task] = []
    networks = [m for stage in stages if stage != "feed" for m in models.get(stage, ())]
    tasks += [Task("parity", "all", m) for m in dict.fromkeys(networks)]
    for stage in STAGE_ORDER[1:]:
        if stage not in stages:
            continue
        for model in models[stage]:
            for impl in STAGE_IMPLS[stage]:
                if impls is None or impl in impls:
                    if impl in IMAGENET_LEFT_OUT.get(stage, ()) and _imagenet(model):
                        continue
                    tasks.append(Task(stage, impl, model))
    if "train" in stages:
        for name in variants:
            for model in models["train"]:
                if _imagenet(model):
                    continue
                for impl in get_variant(name).impls:
                    if impls is None or impl in impls:
                        tasks.append(Task("train", impl, model, name))
    return tasks


def _imagenet(model: str) -> bool:
    return get_architecture(model).family == "imagenet"


def split_turn_group(tasks: list[Task], max_contenders: int = MAX_CONTENDERS) -> list[Job]:
    """One model's training contenders as turn groups of at most ``max_contenders`` processes.

    Every group has all the default contenders (one per implementation), so each variant is timed
    in turns with its implementation's default and the implementations with each other; the
    variants are shared out in order. ValueError if no variant would fit beside the defaults.
    """
    defaults = [t for t in tasks if not t.variant]
    variants = [t for t in tasks if t.variant]
    if len(tasks) <= max_contenders:
        return [Job(TURNS, list(tasks))]
    room = max_contenders - len(defaults)
    if room < 1:
        raise ValueError(
            f"at most {max_contenders} contenders at once leaves no room for a variant beside the "
            f"{len(defaults)} default ones; allow at least {len(defaults) + 1}"
        )
    return [Job(TURNS, [*defaults, *variants[i : i + room]]) for i in range(0, len(variants), room)]


def group_jobs(
    tasks: list[Task],
    isolate: str,
    pairing: str = "sequential",
    max_contenders: int = MAX_CONTENDERS,
) -> list[Job]:
    """One process per task, or one per framework (keras, torch, onnxruntime) in dependency order.

    Grouped by framework, the parity checks run first in the Keras process (which then also
    imports PyTorch, but only builds a model with it): one process start less. A profiling variant
    and the profile stage change their process's environment, so each gets a process of its own.

    With ``pairing="turns"`` the training tasks of each model, and the feed stage's tasks, form
    one turn group each instead (a job whose tasks each get a process and run together, see
    `bench.turns`), at the training stage's place (before inference) or, grouped by framework,
    last: no other stage depends on them. A model with more than ``max_contenders`` contenders gets
    several groups (`split_turn_group`).
    """
    turn_groups: list[Job] = []
    if pairing == TURNS:
        by_model: dict[tuple[str, str], list[Task]] = {}
        for t in tasks:
            if t.stage in TURN_STAGES:
                by_model.setdefault((t.stage, t.model), []).append(t)
        for model_tasks in by_model.values():
            turn_groups += split_turn_group(model_tasks, max_contenders)
        tasks = [t for t in tasks if t.stage not in TURN_STAGES]
    if isolate == "task":
        jobs = [Job(t.process, [t]) for t in tasks]
        if turn_groups:  # at the training stage's place: before inference
            first_infer = next((i for i, t in enumerate(tasks) if t.stage == "infer"), len(jobs))
            jobs[first_infer:first_infer] = turn_groups
        return jobs
    by_process = {p: Job(p, []) for p in PROCESS_ORDER if p != "parity"}
    for t in tasks:
        if not t.own_process:
            by_process["keras" if t.process == "parity" else t.process].tasks.append(t)
    own = [Job(t.process, [t]) for t in tasks if t.own_process]
    return [j for j in by_process.values() if j.tasks] + own + turn_groups
