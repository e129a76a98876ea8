"""Steady-state training images/s of keras-preact, the plain Keras model and the PyTorch peer.

Every implementation does the same work per step: gather a batch of real images, pad-4/crop/flip
augmentation, forward, cross-entropy, backward, SGD with momentum and weight decay on the kernels.
Protocol, the same for all three: ``1 + repeats`` windows of ``steps`` steps; the first is the warm-up
(tracing, allocator, thread pools) and is discarded; the result is the median window's images/s (all
windows are kept in ``extra``).

* keras-preact: ``training.run.pipeline.prepare`` (strategy, tf.data pipeline, model, recipe, compile)
  and ``model.fit`` with the pipeline's per-step callbacks (``EpochStats``, and the
  ``LearningRateController`` of step recipes). Epoch-level callbacks of a real run (checkpoints,
  CSV, TensorBoard) are left out: they are per-epoch I/O, not step time.
* plain-keras: `bench.plain_keras` and ``model.fit(x, y, batch_size=...)`` on NumPy arrays.
* pytorch: `bench.torch_resnet` and the loop of `bench.torch_train`.
* pytorch-compile: the same network and loop with ``torch.compile(net)`` (TorchInductor, default
  mode), as a PyTorch user who wants speed on the CPU runs it. Its first step compiles the
  forward and backward graphs; that step is timed on its own (``compile_s``, before the warm-up
  window) and left out of the images/s. The optimizer step stays eager.

The ImageNet networks (``ResNet50V1``) train at 224x224 on the JPEG folder `bench.jpeg_folder`
writes, each side through its own image pipeline: keras-preact through ``training.run.pipeline.prepare``
with the folder as its ``images`` (the tf.data feed of ``python -m training.images``, the v1 paper's
scale augmentation, untouched: its own thread pools), PyTorch from torchvision's ``ImageFolder`` in
a ``DataLoader`` of ``workers`` worker processes with the same augmentation
(`bench.torch_images`), into torchvision's network. Both decode and augment while they train, on
the same cores. There is no plain Keras model of them.

A window is one Keras epoch of ``steps`` steps (timed by a callback at epoch begin/end, so nothing
is added to the step itself). Every window passes a `bench.turns.Gate`: standalone, windows run
back to back; in a turn group (the default on the CPU) each waits for its turn, so that the
contenders of one model are timed in alternation (see `bench.turns`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.datasets import Images
from bench.turns import Gate

FREE = Gate()  # standalone: windows back to back

PRECISIONS = ("float32", "bfloat16")


# Steps per window when none is given: about 10 s per window on two CPU cores, or 50 GPU steps.
CPU_WINDOW_STEPS = {
    "ResNet8V1": 20,
    "ResNet20V1": 20,
    "ResNet56V1": 8,
    "ResNet110V1": 4,
    "ResNet50V1": 3,
}
CPU_WINDOW_STEPS_DEEP = 2
GPU_WINDOW_STEPS = 50
# Batch when none is given: the papers' 128 for CIFAR; for the ImageNet networks at 224 one that two
# training processes hold at once in a 24 GiB machine on the CPU.
CIFAR_BATCH = 128
IMAGENET_BATCH = {"cpu": 16, "gpu": 128}


@dataclasses.dataclass(frozen=True)
class SpeedSettings:
    """How long to measure: one warm-up window, then ``repeats`` windows of ``steps`` steps of
    ``batch`` images (``0``: the per-model defaults). ImageNet networks train at ``image_size``,
    PyTorch's from a DataLoader of ``workers`` worker processes."""

    batch: int = 0
    steps: int = 0
    repeats: int = 3
    precision: str = "float32"
    device: str = "cpu"  # "cpu" or "gpu"
    image_size: int = 224
    workers: int = 2

    def for_model(self, model: str) -> SpeedSettings:
        """These settings with the batch and the window length resolved for ``model``."""
        from bench.architectures import get_architecture

        batch = self.batch
        if not batch:
            imagenet = get_architecture(model).family == "imagenet"
            batch = IMAGENET_BATCH[self.device] if imagenet else CIFAR_BATCH
        steps = self.steps
        if not steps:
            if self.device == "gpu":
                steps = GPU_WINDOW_STEPS
            else:
                steps = CPU_WINDOW_STEPS.get(model, CPU_WINDOW_STEPS_DEEP)
        return dataclasses.replace(self, batch=batch, steps=steps)


@dataclasses.dataclass
class SpeedResult:
    """Median images/s over the windows, every window's images/s, and what was measured."""

    img_s: float
    windows: list[float]
    params: int
    details: dict[str, Any]
    peak_mem_mb: float | None = None  # peak device memory, GPU runs only


def _result(windows_s: list[float], s: SpeedSettings, params: int, **details: Any) -> SpeedResult:
    rates = [s.batch * s.steps / t for t in windows_s]
    return SpeedResult(float(np.median(rates)), [round(r, 2) for r in rates], params, details)


def keras_peak_memory_mb() -> float | None:
    """Peak memory of the first accelerator under JAX (None on the CPU or another backend)."""
    import keras

    if keras.backend.backend() != "jax":
        return None
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        return None
    stats = device.memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2**20


def keras_timer(gate: Gate):
    """A Keras callback that passes every epoch (a window) through ``gate`` and keeps the wall
    seconds of every window but the first (the warm-up) in ``.seconds``."""
    import keras

    class WindowTimer(keras.callbacks.Callback):
        """Wall time of every epoch but the first (the warm-up); each epoch passes ``gate``."""

        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            gate.before()
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            elapsed = time.perf_counter() - self._start
            gate.after(elapsed)
            if epoch > 0:
                self.seconds.append(elapsed)

    return WindowTimer()


def keras_preact_training(
    model: str, s: SpeedSettings, variant: str | None = None, folder: Path | None = None
):
    """keras-preact's training as its pipeline sets it up: the prepared run (model compiled with
    the recipe), its endless training dataset and its per-step callbacks, for ``variant``. An
    ImageNet network trains on the image ``folder``, as ``python -m training.images`` would."""
    import keras

    from bench.architectures import get_architecture
    from keras_preact.fused_batch_norm import use_fused_batch_norm
    from training import recipes
    from training.run import callbacks as cb
    from training.run.pipeline import TrainConfig, prepare
    from training.run.strategy import StrategyOptions

    arch = get_architecture(model)
    common = dict(
        model=model.lower(),
        augment=variant != "no-augment",
        recipe="paper",
        recipe_overrides={"batch_size": s.batch},
        strategy=StrategyOptions(
            mixed_precision=s.precision, jit_compile="on" if variant == "xla" else "auto"
        ),
        verbose="quiet",
    )
    if arch.family == "imagenet":
        from training.data.images.options import ImageOptions

        if folder is None:
            raise ValueError(f"{model} trains on a folder of images; none was given")
        images = ImageOptions(data=str(folder), image_size=s.image_size)
        config = TrainConfig(model_options=dict(arch.options), images=images, **common)
    else:
        # The sample's images feed the pipeline: images/s do not depend on which images they are.
        config = TrainConfig(dataset="cifar10-sample", **common)
    prepared = prepare(config)
    if variant == "keras-bn":
        use_fused_batch_norm(prepared.model, enabled=False)
    data = prepared.train_dataset()
    if variant == "synthetic-data":
        data = _one_batch_repeated(data)
    callbacks: list[keras.callbacks.Callback] = [
        cb.EpochStats(global_batch=s.batch, epochs=1 + s.repeats, print_line=False)
    ]
    if prepared.schedule.needs_controller:
        callbacks.append(recipes.LearningRateController(prepared.schedule))
    return prepared, data, callbacks


def _one_batch_repeated(feed):
    """The feed's first batch, endlessly: the model's work without the input pipeline's."""
    import keras

    if keras.backend.backend() == "tensorflow":
        return feed.take(1).cache().repeat()

    batch = feed[0]

    class Repeated(keras.utils.PyDataset):
        num_batches = None

        def __getitem__(self, index):
            return batch

    return Repeated()


def keras_preact_speed(
    model: str,
    images: Images,
    s: SpeedSettings,
    variant: str | None = None,
    gate: Gate = FREE,
    folder: Path | None = None,
) -> SpeedResult:
    """Train ``model`` through the keras-preact pipeline and time it."""
    from bench.plain_keras import count_trainable

    del images  # the pipeline reads its own sample or the folder (see keras_preact_training)
    prepared, data, callbacks = keras_preact_training(model, s, variant, folder)
    timer = keras_timer(gate)
    fit_windows(prepared.model, data, s, [*callbacks, timer], timer)
    result = _result(
        timer.seconds,
        s,
        count_trainable(prepared.model),
        jit_compile=str(prepared.model.jit_compile),
        compute_dtype=conv_compute_dtype(prepared.model),
        pipeline="training.run.pipeline.prepare + model.fit",
        **_image_details(model, s),
        **gate.details(),
    )
    result.peak_mem_mb = keras_peak_memory_mb()
    return result


def fit_windows(model, data, s: SpeedSettings, callbacks, timer) -> None:
    """One ``fit`` call: a warm-up epoch, then ``repeats`` timed epochs, all of ``steps`` steps."""
    model.fit(
        data,
        epochs=1 + s.repeats,
        steps_per_epoch=s.steps,
        callbacks=callbacks,
        shuffle=False,  # the pipeline shuffles; Keras would warn that it cannot
        verbose=0,
    )
    if len(timer.seconds) != s.repeats:
        raise RuntimeError(f"expected {s.repeats} timed windows, got {len(timer.seconds)}")


def _image_details(model: str, s: SpeedSettings) -> dict[str, Any]:
    """What the records of an ImageNet network say about its images (nothing for CIFAR ones)."""
    from bench.architectures import get_architecture

    if get_architecture(model).family != "imagenet":
        return {}
    return {"image_size": s.image_size, "data": "JPEG folder, scale augmentation"}


def plain_keras_speed(
    model: str,
    images: Images,
    s: SpeedSettings,
    variant: str | None = None,
    gate: Gate = FREE,
    folder: Path | None = None,
) -> SpeedResult:
    """Train the plain Keras model with ``model.fit`` on NumPy arrays and time it."""
    import keras

    from bench.architectures import CIFAR10_MEAN, CIFAR10_STD
    from bench.plain_keras import build_plain_keras, count_trainable, plain_training_model

    del folder  # CIFAR networks only
    if s.precision != "float32":
        keras.config.set_dtype_policy(f"mixed_{s.precision}")
    net = build_plain_keras(model, CIFAR10_MEAN, CIFAR10_STD)
    train_model = plain_training_model(net)
    train_model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=True if variant == "xla" else "auto",
    )
    # Enough copies of the training set for every step of every window (Keras stops an epoch when
    # NumPy data runs out instead of wrapping around).
    needed = (1 + s.repeats) * s.steps * s.batch
    reps = -(-needed // len(images.x_train))
    x = np.concatenate([images.x_train] * reps).astype("float32")
    y = np.concatenate([images.y_train] * reps)
    timer = keras_timer(gate)
    train_model.fit(
        x,
        y,
        batch_size=s.batch,
        epochs=1 + s.repeats,
        steps_per_epoch=s.steps,
        shuffle=True,
        callbacks=[timer],
        verbose=0,
    )
    result = _result(
        timer.seconds,
        s,
        count_trainable(net),
        jit_compile=str(train_model.jit_compile),
        compute_dtype=conv_compute_dtype(net),
        pipeline="model.fit(numpy arrays), augmentation as Keras layers",
        **gate.details(),
    )
    result.peak_mem_mb = keras_peak_memory_mb()
    return result


def pytorch_compile_speed(
    model: str,
    images: Images,
    s: SpeedSettings,
    variant: str | None = None,
    gate: Gate = FREE,
    folder: Path | None = None,
) -> SpeedResult:
    """`pytorch_speed` with the network compiled by ``torch.compile`` (TorchInductor)."""
    return pytorch_speed(model, images, s, variant, gate, folder, compile_net=True)


def pytorch_speed(
    model: str,
    images: Images,
    s: SpeedSettings,
    variant: str | None = None,
    gate: Gate = FREE,
    folder: Path | None = None,
    compile_net: bool = False,
) -> SpeedResult:
    """Train the PyTorch network with the plain loop and time it (compiled: see the module)."""
    import torch

    from bench.architectures import CIFAR10_MEAN, CIFAR10_STD, get_architecture
    from bench.torch_resnet import build_torch_resnet, count_params
    from bench.torch_train import TorchRecipe, Trainer, batches, to_nchw

    device = torch.device("cuda" if s.device == "gpu" else "cpu")
    memory_format = torch.channels_last if variant == "channels-last" else torch.contiguous_format
    if get_architecture(model).family == "imagenet":
        from bench import torch_images
        from bench.parity import IMAGE_CLASSES

        if folder is None:
            raise ValueError(f"{model} trains on a folder of images; none was given")
        net = torch_images.build_torchvision_resnet(model, IMAGE_CLASSES)
        loader = torch_images.image_loader(
            folder / "train", s.image_size, s.batch, s.workers, persistent=True
        )
        data = _on_device(torch_images.endless(loader), device, memory_format)
        pipeline = "torchvision ImageFolder + DataLoader, eager loop"
        details = {"loader_workers": s.workers}
    else:
        net = build_torch_resnet(model, CIFAR10_MEAN, CIFAR10_STD)
        data = batches(
            to_nchw(images.x_train),
            torch.from_numpy(images.y_train),
            s.batch,
            torch.Generator().manual_seed(0),
            fill=train_mean(images),
            device=device,
            memory_format=memory_format,
        )
        pipeline = "in-memory tensors, batched augmentation, eager loop"
        details = {}
    net = net.to(device).to(memory_format=memory_format)
    params = count_params(net)
    autocast = torch.bfloat16 if s.precision == "bfloat16" else None
    if compile_net:
        net = torch.compile(net)  # TorchInductor, default mode
    trainer = Trainer(net, TorchRecipe(lr_at=lambda step: 0.1, batch_size=s.batch), autocast)
    if compile_net:
        start = time.perf_counter()
        trainer.run(data, 1)  # compiles the forward and backward graphs
        details["compile_s"] = round(time.perf_counter() - start, 2)
        details["compiler"] = "torch.compile (inductor, default mode)"
    windows = []
    for _ in range(1 + s.repeats):
        gate.before()
        windows.append(trainer.run(data, s.steps))
        gate.after(windows[-1])
    windows = windows[1:]  # the warm-up
    result = _result(
        windows,
        s,
        params,
        threads=torch.get_num_threads(),
        compute_dtype=str(autocast or torch.float32).removeprefix("torch."),
        pipeline=pipeline,
        **details,
        **_image_details(model, s),
        **gate.details(),
    )
    if device.type == "cuda":
        result.peak_mem_mb = torch.cuda.max_memory_allocated() / 2**20
    return result


def _on_device(data, device, memory_format):
    """The loader's batches moved to ``device`` in ``memory_format``."""
    for x, y in data:
        yield x.to(device).contiguous(memory_format=memory_format), y.to(device)


def conv_compute_dtype(model) -> str:
    """The dtype the first convolution of a Keras model computes in (its dtype policy's)."""
    import keras

    return next(
        layer.compute_dtype for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
    )


def train_mean(images: Images) -> tuple[float, float, float]:
    """Per-channel mean of the training images (the augmentation's padding value)."""
    m = images.x_train.reshape(-1, 3).mean(axis=0, dtype=np.float64)
    return (float(m[0]), float(m[1]), float(m[2]))


MEASURES = {
    "keras-preact": keras_preact_speed,
    "plain-keras": plain_keras_speed,
    "pytorch": pytorch_speed,
    "pytorch-compile": pytorch_compile_speed,
}
