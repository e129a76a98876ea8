"""``python -m bench``: measure (``run``) and render the README tables (``report``).

python -m bench run --data PATH.npz --output bench/results/cpu.jsonl
python -m bench run --reduced --output /tmp/smoke.jsonl        # CI smoke test, minutes -> seconds
python -m bench report bench/results/*.jsonl --output bench/results/README.md
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import time
from pathlib import Path

from bench import report
from bench.accuracy import AccuracySettings
from bench.architectures import get_architecture
from bench.datasets import load_npz
from bench.feed_speed import FEED_MODEL, FeedSettings
from bench.infer_speed import InferSettings
from bench.jpeg_folder import FolderSpec
from bench.plan import (
    DEFAULT_MODELS,
    GPU_TRAIN_MODELS,
    IMAGE_STAGES,
    ISOLATION,
    MAX_CONTENDERS,
    PAIRING,
    REDUCED_IMAGE_MODEL,
    REDUCED_MODEL,
    group_jobs,
    plan_tasks,
)
from bench.runner import run_jobs
from bench.tasks import STAGE_IMPLS, Settings
from bench.train_speed import CIFAR_BATCH, IMAGENET_BATCH, PRECISIONS, SpeedSettings
from bench.variants import VARIANTS
from keras_preact.command_line import UserError, cli_main
from keras_preact.native_logs import add_native_logs_option, show_native_logs

STAGES = ("accuracy", "feed", "train", "profile", "infer")
# The reduced mode's image stages: a tiny folder, small crops.
REDUCED_IMAGE_SIZE = 32
REDUCED_FOLDER = FolderSpec(train_per_class=4, val_per_class=2, copies=1, sides=(40, 64))
IMPLS = tuple(dict.fromkeys(i for stage in STAGES for i in STAGE_IMPLS[stage]))
BACKENDS = ("tensorflow", "jax")
DEVICES = ("cpu", "gpu")


def _csv(value: str, allowed: tuple[str, ...] | None, what: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise UserError(f"--{what} is empty")
    for item in items:
        if allowed is not None and item not in allowed:
            raise UserError(f"unknown {what} {item!r}; allowed: {', '.join(allowed)}")
    return items


def _positive(value: int, what: str) -> int:
    if value < 1:
        raise UserError(f"--{what} must be at least 1, got {value}")
    return value


def onednn_expected() -> bool:
    """Whether TensorFlow will run on oneDNN here, so that the default run includes the profile
    stage: on x86-64 unless the user turned oneDNN off (``training`` turns it on otherwise)."""
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    return x86 and os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0"


def tensorflow_installed() -> bool:
    """Asked without importing it: the parent process stays free of any framework."""
    return importlib.util.find_spec("tensorflow") is not None


def openvino_installed() -> bool:
    """Asked without importing it (the optional extra of the inference stage's OpenVINO
    contenders)."""
    return importlib.util.find_spec("openvino") is not None


def select_stages(option: str | None, backend: str, device: str) -> tuple[str, ...]:
    """The stages of ``--stages`` (None: all that apply here); UserError for impossible ones.

    The profile stage reads TensorFlow's oneDNN kernels: CPU runs on the TensorFlow backend only,
    and by default only where oneDNN is expected. The infer stage exports through TensorFlow
    (SavedModel, TFLite, tf2onnx), and keras-preact's image feed is tf.data: both by default only
    where TensorFlow is installed (bench/gpu_run.sh measures on a GPU machine without it).
    """
    profiles = backend == "tensorflow" and device == "cpu"
    exports = tensorflow_installed()
    if option is None:
        return tuple(
            s
            for s in STAGES
            if (s != "profile" or (profiles and onednn_expected()))
            and (s not in ("infer", "feed") or exports)
        )
    stages = _csv(option, STAGES, "stages")
    if "profile" in stages and not profiles:
        raise UserError(
            "--stages profile times TensorFlow's oneDNN kernels on the CPU; it needs "
            f"--backend tensorflow --device cpu, got {backend} on {device}"
        )
    if "infer" in stages and not exports:
        raise UserError(
            "--stages infer exports SavedModel, TFLite and ONNX through TensorFlow, which is not "
            "installed here; leave infer out"
        )
    if "feed" in stages and not exports:
        raise UserError(
            "--stages feed times keras-preact's tf.data image feed, and TensorFlow is not "
            "installed here; leave feed out"
        )
    return stages


def select_models(
    option: str | None, stages: tuple[str, ...], stages_given: bool, reduced: bool, device: str
) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """The models of every stage, and the stages left with any; UserError for impossible ones.

    ``--models`` applies to every stage that takes the model: the ImageNet networks (at 224x224)
    only to the training stage (from JPEG files, through keras-preact's tf.data image pipeline)
    and the inference stage. A model written ``STAGE:MODEL`` applies to that stage only (e.g.
    ``train:ResNet164V2,infer:ResNet50V1``). The feed stage has no model. Stages named in
    ``--stages`` must keep a model; the default stages left without one are dropped.
    """
    if option:
        per_stage = {stage: () for stage in STAGES}
        for item in _csv(option, None, "models"):
            stage, _, name = item.rpartition(":")
            if stage and stage not in STAGES:
                raise UserError(
                    f"--models {item}: unknown stage {stage!r}; allowed: {', '.join(STAGES)}"
                )
            model = get_architecture(name).name
            for target in (stage,) if stage else STAGES:
                if get_architecture(model).family == "imagenet" and target not in IMAGE_STAGES:
                    if stage:
                        raise UserError(
                            f"--models {item}: ImageNet networks are measured in the "
                            f"{' and '.join(IMAGE_STAGES)} stages only"
                        )
                    continue
                if model not in per_stage[target]:
                    per_stage[target] += (model,)
    elif reduced:
        per_stage = {stage: (REDUCED_MODEL,) for stage in STAGES}
        if tensorflow_installed():
            per_stage["train"] += (REDUCED_IMAGE_MODEL,)
            per_stage["infer"] += (REDUCED_IMAGE_MODEL,)
    else:
        per_stage = dict(DEFAULT_MODELS)
        if device == "gpu":
            per_stage["train"] = GPU_TRAIN_MODELS
    per_stage["feed"] = (FEED_MODEL,)
    empty = [s for s in stages if not per_stage[s]]
    if empty and stages_given:
        raise UserError(
            f"--models {option}: ImageNet networks are measured in the "
            f"{' and '.join(IMAGE_STAGES)} stages only, and --stages {','.join(empty)} has no "
            "other model"
        )
    stages = tuple(s for s in stages if per_stage[s])
    image_models = [m for m in per_stage.get("train", ()) if get_architecture(m).family != "cifar"]
    if "train" in stages and image_models and not tensorflow_installed():
        raise UserError(
            f"{image_models[0]} trains on JPEG files through keras-preact's tf.data image "
            "pipeline, and TensorFlow is not installed here"
        )
    return per_stage, stages


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="measure and write JSON lines")
    run.add_argument("--data", help="CIFAR-10 .npz (x_train, y_train, x_test, y_test)")
    run.add_argument("--output", required=True, help="JSON-lines file to write")
    run.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    run.add_argument(
        "--workdir",
        help="trained models and exported files (default: runs/bench/<output name>-<date-time>)",
    )
    run.add_argument(
        "--stages",
        help=f"subset of {','.join(STAGES)} (default: all; profile only on TensorFlow CPU runs)",
    )
    run.add_argument("--impls", help=f"subset of {','.join(IMPLS)} (default: all)")
    run.add_argument("--models", help="comma-separated models for every stage (default: per stage)")
    run.add_argument(
        "--backend", default="tensorflow", help=f"Keras backend: {', '.join(BACKENDS)}"
    )
    run.add_argument("--device", default="cpu", help="cpu or gpu (training and accuracy)")
    run.add_argument("--precision", default="float32", help=f"{', '.join(PRECISIONS)}")
    run.add_argument(
        "--batch",
        type=int,
        help=f"training batch (default {CIFAR_BATCH}; ImageNet networks {IMAGENET_BATCH['cpu']} "
        f"on the CPU, {IMAGENET_BATCH['gpu']} on a GPU)",
    )
    run.add_argument(
        "--workers",
        type=int,
        help="decoding workers of the image stages: torchvision's DataLoader num_workers, and the "
        "threads of keras-preact's tf.data feed in the feed stage (default: the cores available)",
    )
    run.add_argument(
        "--feed-batch", type=int, default=64, help="batch of the feed stage (default 64)"
    )
    run.add_argument("--steps", type=int, help="steps per timed window (default: per model)")
    run.add_argument("--repeats", type=int, default=3, help="timed windows (default 3)")
    run.add_argument("--epochs", type=int, default=10, help="accuracy epochs (default 10)")
    run.add_argument("--seeds", default="0,1,2", help="accuracy seeds (default 0,1,2)")
    run.add_argument(
        "--isolate",
        help="one worker process per task or per framework (default: task; framework with --reduced)",
    )
    run.add_argument(
        "--pairing",
        help="training contenders of a model: turns (warm processes timed window by window in "
        "turn; default on the CPU) or sequential (one after the other; default on a GPU)",
    )
    run.add_argument(
        "--variants",
        help=f"profiling variants of the training stage, subset of {','.join(VARIANTS)}; with "
        "turns every variant is one more process holding its own model at the same time (up to "
        "--max-contenders per group)",
    )
    run.add_argument(
        "--max-contenders",
        type=int,
        default=MAX_CONTENDERS,
        help="most training processes timed in turns at once (each holds its model in memory); a "
        "model with more gets several turn groups, each with the default contenders "
        f"(default {MAX_CONTENDERS})",
    )
    run.add_argument("--reduced", action="store_true", help="tiny smoke run on the embedded sample")
    add_native_logs_option(run)
    rep = sub.add_parser("report", help="markdown tables of ratios from result files")
    rep.add_argument("files", nargs="+", help="JSON-lines result files")
    rep.add_argument("--output", help="write the markdown here (default: print it)")
    return parser


def settings_from_args(args: argparse.Namespace, workdir: Path) -> Settings:
    """Validate the ``run`` options into `bench.tasks.Settings`."""
    if args.backend not in BACKENDS:
        raise UserError(f"unknown backend {args.backend!r}; allowed: {', '.join(BACKENDS)}")
    if args.device not in DEVICES:
        raise UserError(f"unknown device {args.device!r}; allowed: {', '.join(DEVICES)}")
    if args.precision not in PRECISIONS:
        raise UserError(f"unknown precision {args.precision!r}; allowed: {', '.join(PRECISIONS)}")
    try:
        seeds = tuple(int(s) for s in _csv(args.seeds, None, "seeds"))
    except ValueError:
        raise UserError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    workers = (
        len(os.sched_getaffinity(0)) if args.workers is None else _positive(args.workers, "workers")
    )
    if args.reduced:
        return Settings(
            workdir=str(workdir),
            data=args.data,
            backend=args.backend,
            device=args.device,
            seeds=seeds[:1],
            speed=SpeedSettings(
                batch=16,
                steps=2,
                repeats=1,
                precision=args.precision,
                image_size=REDUCED_IMAGE_SIZE,
                workers=workers,
            ),
            infer=InferSettings(
                warmup=2,
                repeats=5,
                repeats_b32=2,
                rounds=2,
                settle=1,
                calibration_images=16,
                verify_images=16,
                image_size=REDUCED_IMAGE_SIZE,
            ),
            accuracy=AccuracySettings(
                epochs=1, batch=32, train_images=256, precision=args.precision
            ),
            feed=FeedSettings(
                batch=8, workers=workers, steps=2, repeats=1, image_size=REDUCED_IMAGE_SIZE
            ),
            folder=REDUCED_FOLDER,
        )
    return Settings(
        workdir=str(workdir),
        data=args.data,
        backend=args.backend,
        device=args.device,
        seeds=seeds,
        speed=SpeedSettings(
            batch=0 if args.batch is None else _positive(args.batch, "batch"),
            steps=_positive(args.steps, "steps") if args.steps else 0,
            repeats=_positive(args.repeats, "repeats"),
            precision=args.precision,
            device=args.device,
            workers=workers,
        ),
        accuracy=AccuracySettings(
            epochs=_positive(args.epochs, "epochs"),
            precision=args.precision,
            device=args.device,
        ),
        feed=FeedSettings(
            batch=_positive(args.feed_batch, "feed-batch"),
            workers=workers,
            repeats=_positive(args.repeats, "repeats"),
            **({"steps": _positive(args.steps, "steps")} if args.steps else {}),
        ),
    )


def run_command(args: argparse.Namespace) -> Path:
    """``run``: check everything, then measure; returns the output file."""
    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise UserError(f"{output} exists; pass --overwrite to replace it")
    if not output.parent.is_dir():
        raise UserError(f"--output {output}: directory {output.parent} does not exist")
    if not os.access(output.parent, os.W_OK):
        raise UserError(f"--output {output}: directory {output.parent} is not writable")
    stages = select_stages(args.stages, args.backend, args.device)
    impls = _csv(args.impls, IMPLS, "impls") if args.impls else None
    if "accuracy" in stages and impls and "pytorch" in impls and "keras-preact" not in impls:
        raise UserError(
            "--impls: the pytorch accuracy run replays keras-preact's recipe; include keras-preact"
        )
    per_stage, stages = select_models(
        args.models, stages, args.stages is not None, args.reduced, args.device
    )
    isolate = args.isolate or ("framework" if args.reduced else "task")
    if isolate not in ISOLATION:
        raise UserError(f"unknown --isolate {isolate!r}; allowed: {', '.join(ISOLATION)}")
    # A GPU does not drift like a shared CPU, and JAX processes would each claim most of its memory.
    pairing = args.pairing or ("turns" if args.device == "cpu" else "sequential")
    if pairing not in PAIRING:
        raise UserError(f"unknown --pairing {pairing!r}; allowed: {', '.join(PAIRING)}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = (
        Path(args.workdir) if args.workdir else Path("runs") / "bench" / f"{output.stem}-{stamp}"
    )
    settings = settings_from_args(args, workdir)
    if args.data is not None:
        load_npz(args.data)  # fail now, not after an hour of training
    elif "accuracy" in stages and not args.reduced:
        raise UserError("the accuracy stage needs --data PATH.npz (real CIFAR-10 images)")
    variants = _csv(args.variants, tuple(VARIANTS), "variants") if args.variants else ()
    if variants and "train" not in stages:
        raise UserError("--variants profile the training stage; add train to --stages")
    if variants and all(get_architecture(m).family != "cifar" for m in per_stage["train"]):
        raise UserError("--variants profile the training of the CIFAR networks; --models has none")
    if "infer" in stages and not openvino_installed() and (impls is None or "openvino" in impls):
        impls = tuple(i for i in (impls or IMPLS) if i != "openvino")
        print(
            '[bench] OpenVINO is not installed (pip install ".[bench]"): the inference '
            "stage measures no OpenVINO contender"
        )
    tasks = plan_tasks(stages, per_stage, impls, variants)
    try:
        jobs = group_jobs(tasks, isolate, pairing, _positive(args.max_contenders, "max-contenders"))
    except ValueError as e:
        raise UserError(f"--max-contenders {args.max_contenders}: {e}") from None
    run_jobs(jobs, settings, output)
    print(report.render(report.load([output])))
    return output


def report_command(args: argparse.Namespace) -> None:
    """``report``: render the tables; write them to ``--output`` or print them."""
    text = report.render(report.load([Path(f) for f in args.files]))
    if args.output:
        out = Path(args.output)
        tmp = out.with_name(out.name + ".tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
        except OSError as e:
            raise UserError(f"--output {out}: cannot write ({e.strerror})") from None
        tmp.replace(out)
    else:
        print(text)


@cli_main
def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m bench``."""
    args = _parser().parse_args(argv)
    if getattr(args, "native_logs", False):
        show_native_logs()
    if args.command == "run":
        run_command(args)
    else:
        report_command(args)
