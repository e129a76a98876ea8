"""Accuracy on real images: keras-preact and the PyTorch peer trained with the same recipe.

keras-preact trains through its pipeline's stages (strategy, model, recipe and schedule, compiled
model, tf.data input, ``LearningRateController``) on the in-memory images of ``--data``. The schedule
it resolves (every step's learning rate, momentum, weight decay, batch) is written to a JSON file that
the PyTorch run replays, so both follow the same recipe by construction, not by a second copy of it.
Both evaluate on the same test images; every seed is a separate run.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from bench.datasets import Images
from keras_preact.command_line import UserError

RECIPE = "paper"


@dataclasses.dataclass(frozen=True)
class AccuracySettings:
    """Epochs of the shortened paper recipe (lr /10 at 50 % and 75 % of them), batch, precision."""

    epochs: int = 10
    batch: int = 128
    train_images: int | None = None  # the first N training images only (the reduced mode)
    precision: str = "float32"
    device: str = "cpu"


@dataclasses.dataclass
class AccuracyResult:
    """Test accuracy of one seed, its wall time of training, and what it was trained on."""

    acc: float
    train_time_s: float
    details: dict[str, Any]


def recipe_path(workdir: Path, model: str) -> Path:
    """Where the keras-preact run leaves the resolved recipe for the PyTorch run."""
    return workdir / f"recipe-{model}.json"


def trained_model_path(workdir: Path, impl: str, model: str, seed: int) -> Path:
    """Where an accuracy run keeps its trained model (the inference stage reuses seed 0's)."""
    suffix = ".pt" if impl == "pytorch" else ".keras"
    return workdir / f"{impl}-{model}-seed{seed}{suffix}"


def keras_preact_accuracy(
    model: str, images: Images, s: AccuracySettings, seed: int, workdir: Path
) -> AccuracyResult:
    """Train ``model`` with the pipeline's recipe on ``images`` and evaluate it on the test split."""
    from keras_preact.datasets import CIFAR10_LABELS
    from training import recipes
    from training.data.cifar.arrays import make_arrays
    from training.run.pipeline import TrainConfig, prepare
    from training.run.strategy import StrategyOptions

    config = TrainConfig(
        model=model.lower(),
        dataset="cifar10",
        recipe=RECIPE,
        recipe_overrides={"epochs": s.epochs, "batch_size": s.batch},
        strategy=StrategyOptions(mixed_precision=s.precision),
        seed=seed,
        deterministic=False,  # as a user would train: deterministic ops cost speed
        verbose="quiet",
    )
    arrays = make_arrays(
        "cifar10",
        images.x_train,
        images.y_train,
        images.x_test,
        images.y_test,
        CIFAR10_LABELS,
        origin=images.source,
    )
    prepared = prepare(config, arrays=arrays)
    recipe, schedule, net = prepared.recipe, prepared.schedule, prepared.model
    eval_data, runtime = prepared.eval_dataset, prepared.runtime

    write_recipe(recipe_path(workdir, model), recipe, schedule)
    callbacks = [recipes.LearningRateController(schedule)] if schedule.needs_controller else []
    start = time.perf_counter()
    with runtime.scope():
        net.fit(
            prepared.train_dataset(),
            epochs=schedule.epochs,
            steps_per_epoch=schedule.steps_per_epoch,
            callbacks=callbacks,
            shuffle=False,
            verbose=0,
        )
    seconds = time.perf_counter() - start
    acc = float(net.evaluate(eval_data, verbose=0, return_dict=True)["accuracy"])
    net.save(trained_model_path(workdir, "keras-preact", model, seed))
    return AccuracyResult(
        acc,
        seconds,
        {"epochs": schedule.epochs, "train_images": len(arrays.x_train), "recipe": RECIPE},
    )


def write_recipe(path: Path, recipe: Any, schedule: Any) -> None:
    """The resolved recipe as JSON: settings, schedule, and the learning rate of every step."""
    if schedule.gated_lr is not None:
        raise UserError(
            "the error-gated warm-up cannot be replayed step by step; use a ResNet-20/56"
        )
    payload = {
        "recipe": dataclasses.asdict(recipe),
        "schedule": schedule.describe(),
        "lr_per_step": [schedule.lr_at(i) for i in range(schedule.total_steps)],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(path)


def pytorch_accuracy(
    model: str, images: Images, s: AccuracySettings, seed: int, workdir: Path
) -> AccuracyResult:
    """Train the PyTorch network replaying keras-preact's resolved recipe, evaluate on the test split."""
    import torch

    from bench.architectures import CIFAR10_MEAN, CIFAR10_STD
    from bench.torch_resnet import build_torch_resnet
    from bench.torch_train import TorchRecipe, Trainer, batches, evaluate, to_nchw
    from bench.train_speed import train_mean

    path = recipe_path(workdir, model)
    if not path.is_file():
        raise UserError(f"{path} is missing: the keras-preact accuracy run writes the recipe first")
    resolved = json.loads(path.read_text())
    r, sched, lrs = resolved["recipe"], resolved["schedule"], resolved["lr_per_step"]
    if sched["steps_per_epoch"] != len(images.x_train) // r["batch_size"]:
        raise UserError(f"{path} was resolved for a different training set; rerun keras-preact")
    recipe = TorchRecipe(
        lr_at=lambda step: lrs[min(step, len(lrs) - 1)],
        momentum=r["momentum"],
        nesterov=r["nesterov"],
        weight_decay=r["weight_decay"],
        batch_size=r["batch_size"],
        label_smoothing=r["label_smoothing"],
    )
    torch.manual_seed(seed)
    device = torch.device("cuda" if s.device == "gpu" else "cpu")
    net = build_torch_resnet(model, CIFAR10_MEAN, CIFAR10_STD).to(device)
    autocast = torch.bfloat16 if s.precision == "bfloat16" else None
    trainer = Trainer(net, recipe, autocast)
    generator = torch.Generator().manual_seed(seed)
    data = batches(
        to_nchw(images.x_train),
        torch.from_numpy(images.y_train),
        recipe.batch_size,
        generator,
        fill=train_mean(images),
        device=device,
    )
    seconds = trainer.run(data, sched["total_steps"])
    acc = evaluate(net, images.x_test, images.y_test)
    torch.save(net.state_dict(), trained_model_path(workdir, "pytorch", model, seed))
    return AccuracyResult(
        acc,
        seconds,
        {"epochs": sched["epochs"], "train_images": len(images.x_train), "recipe": RECIPE},
    )


MEASURES = {"keras-preact": keras_preact_accuracy, "pytorch": pytorch_accuracy}
