"""The CIFAR ResNets the benchmark compares, described once for every implementation."""

from __future__ import annotations

from typing import NamedTuple

from keras_preact.cli import UserError


class Architecture(NamedTuple):
    """One CIFAR ResNet: v1 basic blocks (option-A shortcuts) or v2 pre-activation bottlenecks."""

    name: str  # the keras-preact factory name, e.g. "ResNet20V1"
    version: int  # 1 = He et al. 2015, 2 = He et al. 2016 (full pre-activation)
    blocks_per_stage: int  # n: depth 6n+2 (v1, basic) or 9n+2 (v2, bottleneck)

    @property
    def depth(self) -> int:
        """Layers with weights: 6n+2 (basic) or 9n+2 (bottleneck)."""
        return (6 if self.version == 1 else 9) * self.blocks_per_stage + 2

    @property
    def unit(self) -> str:
        """keras_preact's unit kind."""
        return "basic" if self.version == 1 else "bottleneck"


# Stage widths of the papers' CIFAR networks: v1 basic blocks output 16/32/64 channels, v2
# bottlenecks are 16/32/64 wide inside and output 4x that.
STAGE_WIDTHS = (16, 32, 64)
BOTTLENECK_EXPANSION = 4

# keras_preact.mean_std("cifar10") in pixel units, repeated here so that the PyTorch process never
# imports Keras (tests/bench checks they are equal).
CIFAR10_MEAN = (125.306915, 122.950401, 113.865379)
CIFAR10_STD = (62.993217, 62.088707, 66.704895)

ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("ResNet8V1", 1, 1),  # the reduced (CI) mode's network
        Architecture("ResNet20V1", 1, 3),
        Architecture("ResNet56V1", 1, 9),
        Architecture("ResNet110V1", 1, 18),
        Architecture("ResNet164V2", 2, 18),
        Architecture("ResNet1001V2", 2, 111),
    )
}


def get_architecture(name: str) -> Architecture:
    """Look an architecture up by name, case-insensitively; ``UserError`` names the allowed ones."""
    for arch in ARCHITECTURES.values():
        if arch.name.lower() == name.lower():
            return arch
    raise UserError(f"unknown model {name!r}; allowed: {', '.join(ARCHITECTURES)}")
