"""Training and evaluating the PyTorch peer with the same recipe as keras-preact.

The loop is the ordinary PyTorch one: in-memory tensors, a shuffled index per epoch, the papers'
augmentation (4-pixel zero padding, random 32x32 crop, horizontal flip) done on the batch, SGD with
momentum and weight decay on conv/linear weights only (keras-preact's L2 of ``wd/2`` on kernels has
the same gradient), cross-entropy on logits.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from keras_preact.command_line import UserError

PAD = 4


@dataclasses.dataclass(frozen=True)
class TorchRecipe:
    """SGD settings; ``lr_at(step)`` is the learning rate of a 0-based optimizer step."""

    lr_at: Callable[[int], float]
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    batch_size: int = 128
    label_smoothing: float = 0.0


def to_nchw(x: np.ndarray) -> torch.Tensor:
    """uint8 NHWC images -> float32 NCHW tensor of raw pixels (the network normalizes)."""
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).float()


def augment(
    x: torch.Tensor, generator: torch.Generator, fill: tuple[float, ...] = (0.0, 0.0, 0.0)
) -> torch.Tensor:
    """Per-image random crop of the padded batch and random horizontal flip (NCHW raw pixels).

    The border is ``fill`` per channel: keras-preact's pipeline pads raw pixels with the training
    mean (zero after normalization, as the papers pad mean-subtracted images), so the same recipe
    pads with the same value here.
    """
    n, _, h, w = x.shape
    border = torch.tensor(fill, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    padded = F.pad(x - border, (PAD, PAD, PAD, PAD)) + border
    # Draws come from the (CPU) generator, so a run is reproducible on any device.
    dy = torch.randint(0, 2 * PAD + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * PAD + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    rows = dy[:, None] + torch.arange(h)[None, :]  # (n, h)
    cols = dx[:, None] + torch.arange(w)[None, :]  # (n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(n)[:, None, None, None]
    chans = torch.arange(x.shape[1])[None, :, None, None]
    index = [t.to(x.device) for t in (batch, chans, rows[:, None, :, None], cols[:, None, None, :])]
    return padded[tuple(index)]


def make_optimizer(model: nn.Module, recipe: TorchRecipe) -> torch.optim.SGD:
    """SGD with decay on conv and linear weights only, as Keras' kernel regularizers do."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            is_kernel = name == "weight" and isinstance(module, nn.Conv2d | nn.Linear)
            (decay if is_kernel else no_decay).append(p)
    return torch.optim.SGD(
        [
            {"params": decay, "weight_decay": recipe.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=recipe.lr_at(0),
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
    )


def batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    *,
    fill: tuple[float, ...] = (0.0, 0.0, 0.0),
    device: torch.device | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless augmented batches on ``device`` in ``memory_format``: reshuffled every epoch, last
    partial batch dropped."""
    n = len(x)
    if n < batch_size:
        raise UserError(f"batch size {batch_size} is larger than the {n} training images")
    if device is not None and device.type != "cpu":
        # The whole set lives on the accelerator; batches are gathered and augmented there.
        x, y = x.to(device), y.to(device)
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = order[start : start + batch_size]
            images = augment(x[idx.to(x.device)], generator, fill)
            yield images.contiguous(memory_format=memory_format), y[idx.to(y.device)]


class Trainer:
    """One model, its optimizer and a step counter; ``autocast`` a dtype for mixed precision."""

    def __init__(
        self, model: nn.Module, recipe: TorchRecipe, autocast: torch.dtype | None = None
    ) -> None:
        self.model = model
        self.recipe = recipe
        self.autocast = autocast
        self.device_type = next(model.parameters()).device.type
        self.optimizer = make_optimizer(model, recipe)
        self.step = 0

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One SGD step at the recipe's learning rate for this step; returns the loss tensor
        (not a float: converting would wait for the device every step)."""
        lr = self.recipe.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(
            self.device_type, dtype=self.autocast or torch.float32, enabled=bool(self.autocast)
        ):
            logits = self.model(images)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.recipe.label_smoothing)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return loss.detach()

    def run(self, data: Iterator[tuple[torch.Tensor, torch.Tensor]], steps: int) -> float:
        """``steps`` steps from ``data``; returns their wall seconds (device work included)."""
        start = time.perf_counter()
        for _ in range(steps):
            self.train_step(*next(data))
        if self.device_type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start


@torch.inference_mode()
def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy on uint8 NHWC images."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = model(to_nchw(x[start : start + batch_size]).to(device))
        correct += int((logits.argmax(1).cpu().numpy() == y[start : start + batch_size]).sum())
    return correct / len(x)
