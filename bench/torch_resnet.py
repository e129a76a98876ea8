"""A plain PyTorch implementation of the same CIFAR ResNets, written the way PyTorch users write them.

v1 (He et al. 2015, section 4.2): 3x3 conv stem, three stages of basic blocks, option-A shortcuts
(subsample with stride 2, zero-pad the new channels), no conv biases, global average pool, linear.
v2 (He et al. 2016): full pre-activation bottlenecks (BN-ReLU-conv1x1, BN-ReLU-conv3x3,
BN-ReLU-conv1x1 at 4x width), projection shortcuts where the shape changes, taken from the
pre-activated input; the first unit after the stem's BN-ReLU has no pre-activation of its own;
a final BN-ReLU before the pool.

The network takes raw NCHW pixels in [0, 255] and normalizes them itself, like the keras-preact models
built with ``preprocessing="cifar10"``, so both sides do the same work and take the same input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.architectures import (
    BOTTLENECK_EXPANSION,
    STAGE_WIDTHS,
    Architecture,
    cifar_architecture,
)


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` on NCHW input."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize a batch."""
        return (x - self.mean) / self.std


class ShortcutA(nn.Module):
    """Option A: identity, subsampled by the stride, new channels zero-padded (no parameters)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Subsample, then append the zero channels (as keras-preact's option-A shortcut does)."""
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra))
        return x


class BasicBlockV1(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, add the shortcut, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = ShortcutA(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual unit of He et al. 2015."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class BottleneckV2(nn.Module):
    """Full pre-activation bottleneck of He et al. 2016."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, preact: bool) -> None:
        super().__init__()
        width = out_channels // BOTTLENECK_EXPANSION
        # The first unit follows the stem's BN-ReLU, so it does not pre-activate again.
        self.bn0 = nn.BatchNorm2d(in_channels) if preact else None
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.projection = (
            nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
            if stride != 1 or in_channels != out_channels
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activate, then three convolutions; projections read the pre-activated input."""
        act = F.relu(self.bn0(x)) if self.bn0 is not None else x
        shortcut = self.projection(act) if self.projection is not None else x
        out = self.conv1(act)
        out = self.conv2(F.relu(self.bn1(out)))
        out = self.conv3(F.relu(self.bn2(out)))
        return out + shortcut


class CifarResNet(nn.Module):
    """Stem, three stages, head; v1 or v2 by the architecture."""

    def __init__(
        self,
        arch: Architecture,
        classes: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
    ) -> None:
        super().__init__()
        self.arch = arch
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(3, STAGE_WIDTHS[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(STAGE_WIDTHS[0])
        blocks: list[nn.Module] = []
        channels = STAGE_WIDTHS[0]
        for stage, width in enumerate(STAGE_WIDTHS):
            out = width if arch.version == 1 else width * BOTTLENECK_EXPANSION
            for i in range(arch.blocks_per_stage):
                stride = 2 if stage > 0 and i == 0 else 1
                if arch.version == 1:
                    blocks.append(BasicBlockV1(channels, out, stride))
                else:
                    blocks.append(BottleneckV2(channels, out, stride, preact=stage + i > 0))
                channels = out
        self.blocks = nn.Sequential(*blocks)
        # v2 ends with the BN-ReLU its last unit left out; v1 is already activated.
        self.final_bn = nn.BatchNorm2d(channels) if arch.version == 2 else None
        self.fc = nn.Linear(channels, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for raw NCHW pixels in [0, 255]."""
        x = F.relu(self.bn1(self.conv1(self.normalize(x))))
        x = self.blocks(x)
        if self.final_bn is not None:
            x = F.relu(self.final_bn(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class ServingModule(nn.Module):
    """keras-preact's artifact contract around a network: NHWC raw pixels in, probabilities out."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Probabilities for a float NHWC batch of raw pixels."""
        return torch.softmax(self.net(images.permute(0, 3, 1, 2)), dim=1)


def build_torch_resnet(
    name: str,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    classes: int = 10,
) -> CifarResNet:
    """The PyTorch network for a benchmark model name (``UserError`` if unknown)."""
    return CifarResNet(cifar_architecture(name), classes, mean, std)


def count_params(model: nn.Module) -> int:
    """Trainable parameters (BN running statistics are buffers, as in Keras they are non-trainable)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def weight_shapes(model: nn.Module) -> list[tuple[int, ...]]:
    """Trainable weight shapes in Keras layout (conv HWIO, dense IO), sorted: a structural fingerprint."""
    shapes = []
    for p in model.parameters():
        shape = tuple(p.shape)
        if len(shape) == 4:
            shape = (shape[2], shape[3], shape[1], shape[0])
        elif len(shape) == 2:
            shape = (shape[1], shape[0])
        shapes.append(shape)
    return sorted(shapes)


def conv_strides(model: nn.Module) -> list[tuple[int, ...]]:
    """Every convolution as ``(kernel h, kernel w, in, out, stride h, stride w)`` in Keras' order,
    sorted (compare with `bench.plain_keras.conv_strides`)."""
    return sorted(
        (m.weight.shape[2], m.weight.shape[3], m.weight.shape[1], m.weight.shape[0], *m.stride)
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    )
