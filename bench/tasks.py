"""The unit of work of a benchmark run: one stage of one implementation on one model, as records.

A ``Task`` is plain data (it travels to a worker process as JSON); ``run_task`` does it in the
current process and returns `bench.results.Record` objects. Frameworks are imported inside the
stage functions, so a PyTorch worker never loads TensorFlow and the other way round.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from bench.accuracy import AccuracySettings, trained_model_path
from bench.architectures import get_architecture
from bench.datasets import load_images
from bench.feed_speed import FeedSettings
from bench.infer_speed import InferSettings
from bench.jpeg_folder import FolderSpec, ensure_folder, folder_stats
from bench.results import Record, cpu_device, versions
from bench.timing import ForeignLoad, device_label
from bench.train_speed import FREE, SpeedSettings
from bench.turns import Gate
from bench.variants import get_variant

STAGES = ("parity", "accuracy", "feed", "train", "profile", "infer")
# Which implementations each stage has, and the worker process kind each one runs in
# ("keras": the Keras backend of the run; the others are fixed).
STAGE_IMPLS: dict[str, dict[str, str]] = {
    "parity": {"all": "parity"},
    "accuracy": {"keras-preact": "keras", "pytorch": "torch"},
    "feed": {"keras-preact": "keras", "pytorch": "torch"},
    "train": {
        "keras-preact": "keras",
        "plain-keras": "keras",
        "pytorch": "torch",
        "pytorch-compile": "torch",
    },
    "profile": {"keras-preact": "keras"},
    "infer": {
        "keras": "keras",
        "pytorch": "torch",
        "onnxruntime": "onnxruntime",
        "openvino": "openvino",
    },
}
# The stages whose contenders are timed window by window in turn (bench.turns).
TURN_STAGES = ("feed", "train")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a task needs besides its stage, implementation and model (JSON-serialisable)."""

    workdir: str
    data: str | None = None
    backend: str = "tensorflow"
    device: str = "cpu"
    seeds: tuple[int, ...] = (0, 1, 2)
    speed: SpeedSettings = dataclasses.field(default_factory=SpeedSettings)
    infer: InferSettings = dataclasses.field(default_factory=InferSettings)
    accuracy: AccuracySettings = dataclasses.field(default_factory=AccuracySettings)
    feed: FeedSettings = dataclasses.field(default_factory=FeedSettings)
    folder: FolderSpec = dataclasses.field(default_factory=FolderSpec)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the job file."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Settings:
        """Inverse of ``to_dict``."""
        return cls(
            **{
                **d,
                "seeds": tuple(d["seeds"]),
                "speed": SpeedSettings(**d["speed"]),
                "infer": InferSettings(**d["infer"]),
                "accuracy": AccuracySettings(**d["accuracy"]),
                "feed": FeedSettings(**d["feed"]),
                "folder": FolderSpec(**{**d["folder"], "sides": tuple(d["folder"]["sides"])}),
            }
        )

    def windows(self, stage: str) -> int:
        """Windows a contender of ``stage`` times, the warm-up included."""
        return 1 + (self.feed.repeats if stage == "feed" else self.speed.repeats)

    def image_folder(self) -> Path:
        """The JPEG folder of the image stages, in the work directory (written once)."""
        return ensure_folder(self.workdir, self.folder)


@dataclasses.dataclass(frozen=True)
class Task:
    """One stage of one implementation on one model."""

    stage: str
    impl: str
    model: str  # a network, or for the feed stage `bench.feed_speed.FEED_MODEL`
    variant: str | None = None  # a `bench.variants` name (train stage only)

    @property
    def own_process(self) -> bool:
        """Whether it needs a worker process of its own: a profiling variant or the profile stage
        set the worker's environment before any framework starts."""
        return self.variant is not None or self.stage == "profile"

    @property
    def process(self) -> str:
        """The kind of worker process it runs in: keras, torch, onnxruntime or parity."""
        return STAGE_IMPLS[self.stage][self.impl]

    def describe(self) -> str:
        """``train pytorch ResNet20V1`` (``[variant]`` appended)."""
        text = f"{self.stage} {self.impl} {self.model}"
        return f"{text} [{self.variant}]" if self.variant else text


def _device(s: Settings) -> str:
    if s.device == "cpu":
        return cpu_device()
    try:
        import torch

        if torch.cuda.is_available():
            return f"gpu: {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    import jax

    return f"gpu: {jax.devices()[0].device_kind}"


def _keras_backend() -> str:
    import keras

    return keras.backend.backend()


RUNTIME_BACKENDS = {
    "savedmodel": "tensorflow",
    "tflite-float32": "litert",
    "tflite-float16": "litert",
    "tflite-dynamic": "litert",
    "tflite-int8": "litert",
    "onnx": "onnxruntime",
    "onnx-int8": "onnxruntime",
    "openvino-float32": "openvino",
    "openvino-bfloat16": "openvino",
    "openvino-int8": "openvino",
    "pytorch-onnx": "onnxruntime",
    "pytorch-onnx-int8": "onnxruntime",
    "pytorch-openvino-float32": "openvino",
    "pytorch-openvino-bfloat16": "openvino",
    "pytorch-openvino-int8": "openvino",
    "pytorch": "torch",
    "pytorch-compile": "torch",
}


def run_task(task: Task, s: Settings, gate: Gate = FREE) -> list[Record]:
    """Do ``task`` here and now; ``UserError`` for impossible settings.

    ``gate`` brackets the timed windows of a training or feed task (a `bench.turns.TurnGate` in
    a turn group, which then also measures other processes' CPU use per window instead of overall).
    """
    images = load_images(s.data)
    workdir = Path(s.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with ForeignLoad() as load:
        if task.stage == "train":
            rows = _train(task, s, images, workdir, gate)
        elif task.stage == "feed":
            rows = _feed(task, s, gate)
        else:
            rows = _STAGES[task.stage](task, s, images, workdir)
    cores = gate.foreign_cores()
    cores = load.cores if cores is None else cores
    device = device_label(_device(s), cores)
    found = versions()
    return [
        Record(
            impl=impl,
            model=task.model,
            metric=metric,
            value=round(float(value), 4),
            batch=batch,
            device=device,
            backend=backend,
            versions=found,
            stage=task.stage,
            foreign_load=cores,
            variant=task.variant,
            **extra,
        )
        for impl, metric, value, batch, backend, extra in rows
    ]


Row = tuple[str, str, float, int | None, str, dict[str, Any]]


def _parity(task: Task, s: Settings, images, workdir: Path) -> list[Row]:
    from bench.parity import check_parity

    counts = check_parity(task.model)
    keras_backend = _keras_backend()
    return [
        (impl, "params", n, None, "torch" if impl == "pytorch" else keras_backend, {})
        for impl, n in counts.items()
    ]


def _train(task: Task, s: Settings, images, workdir: Path, gate: Gate) -> list[Row]:
    from bench.train_speed import MEASURES

    speed = s.speed.for_model(task.model)
    precision = get_variant(task.variant).precision if task.variant else None
    if precision:
        speed = dataclasses.replace(speed, precision=precision)
    imagenet = get_architecture(task.model).family == "imagenet"
    folder = s.image_folder() if imagenet else None
    r = MEASURES[task.impl](task.model, images, speed, task.variant, gate, folder)
    if folder is not None:
        r.details["folder"] = folder_stats(folder)
    backend = "torch" if task.impl.startswith("pytorch") else _keras_backend()
    extra = {
        "n": speed.steps * speed.batch,
        "extra": {
            "windows_img_s": r.windows,
            "params": r.params,
            "precision": speed.precision,
            **r.details,
        },
    }
    rows: list[Row] = [(task.impl, "train_img_s", r.img_s, speed.batch, backend, extra)]
    if "compile_s" in r.details:
        rows.append((task.impl, "compile_s", r.details["compile_s"], speed.batch, backend, extra))
    if r.peak_mem_mb is not None:
        rows.append((task.impl, "peak_mem_mb", r.peak_mem_mb, speed.batch, backend, extra))
    return rows


def _feed(task: Task, s: Settings, gate: Gate) -> list[Row]:
    from bench.feed_speed import MEASURES

    folder = s.image_folder()
    r = MEASURES[task.impl](folder, s.feed, gate)
    backend = "torch" if task.impl == "pytorch" else "tensorflow"
    extra = {
        "n": s.feed.steps * s.feed.batch,
        "extra": {
            "windows_img_s": r.windows,
            "workers": s.feed.workers,
            "image_size": s.feed.image_size,
            "folder": folder_stats(folder),
            **r.details,
        },
    }
    return [(task.impl, "feed_img_s", r.img_s, s.feed.batch, backend, extra)]


def _profile(task: Task, s: Settings, images, workdir: Path) -> list[Row]:
    from bench.step_profile import WHOLE, profile_step

    speed = s.speed.for_model(task.model)
    p = profile_step(task.model, speed)
    rows: list[Row] = []
    base = {"n": p.steps * speed.batch}
    for part, ms, calls, gflop_s in p.rows():
        detail = {"part": part, "calls_per_step": round(calls, 2), **p.details}
        if gflop_s is not None:
            detail["gflop_s"] = round(gflop_s, 1)
        rows.append(
            ("keras-preact", "step_ms", ms, speed.batch, "tensorflow", {**base, "extra": detail})
        )
    whole = {"part": WHOLE, **p.details}
    rows.append(
        ("keras-preact", "step_ms", p.wall_ms, speed.batch, "tensorflow", {**base, "extra": whole})
    )
    return rows


def _accuracy(task: Task, s: Settings, images, workdir: Path) -> list[Row]:
    from bench.accuracy import MEASURES

    if s.accuracy.train_images:
        n = s.accuracy.train_images
        images = images._replace(x_train=images.x_train[:n], y_train=images.y_train[:n])
    backend = "torch" if task.impl == "pytorch" else _keras_backend()
    rows: list[Row] = []
    for seed in s.seeds:
        r = MEASURES[task.impl](task.model, images, s.accuracy, seed, workdir)
        extra = {
            "seed": seed,
            "n": len(images.y_test),
            "extra": {**r.details, "data": images.source, "precision": s.accuracy.precision},
        }
        rows.append((task.impl, "acc", r.acc, s.accuracy.batch, backend, extra))
        rows.append((task.impl, "train_time_s", r.train_time_s, s.accuracy.batch, backend, extra))
    return rows


def _infer(task: Task, s: Settings, images, workdir: Path) -> list[Row]:
    from bench import infer_speed

    # The accuracy stage's seed-0 models, when it ran: then accuracy per format means something.
    seed = min(s.seeds)
    keras_file = trained_model_path(workdir, "keras-preact", task.model, seed)
    torch_file = trained_model_path(workdir, "pytorch", task.model, seed)
    if task.impl == "keras":
        trained = keras_file if keras_file.is_file() else None
        results = infer_speed.keras_side(task.model, images, s.infer, workdir, trained)
    elif task.impl == "pytorch":
        trained = torch_file if torch_file.is_file() else None
        results = infer_speed.pytorch_side(task.model, images, s.infer, workdir, trained)
    else:
        trained = keras_file if keras_file.is_file() and torch_file.is_file() else None
        side = (
            infer_speed.onnxruntime_side
            if task.impl == "onnxruntime"
            else infer_speed.openvino_side
        )
        results = side(task.model, images, s.infer, workdir, trained is not None)
    rows: list[Row] = []
    for r in results:
        backend = RUNTIME_BACKENDS.get(r.impl) or _keras_backend()
        extra = {"extra": {**r.details, "weights": "trained seed 0" if trained else "random"}}
        rows.append((r.impl, "lat1_ms", r.lat1_ms, 1, backend, extra))
        rows.append((r.impl, "img_s_b32", r.img_s_b32, 32, backend, extra))
        if r.acc is not None:
            rows.append((r.impl, "acc", r.acc, 32, backend, {**extra, "n": len(images.y_test)}))
    return rows


_STAGES = {"parity": _parity, "accuracy": _accuracy, "profile": _profile, "infer": _infer}
