"""The ResNets the benchmark compares, described once for every implementation: the papers' CIFAR
networks (trained on 32x32 CIFAR-10 images) and ImageNet networks (trained at 224x224 on a folder of
JPEG files, against torchvision's)."""

from __future__ import annotations

from typing import NamedTuple

from keras_preact.command_line import UserError


class Architecture(NamedTuple):
    """One CIFAR ResNet: v1 basic blocks (option-A shortcuts) or v2 pre-activation bottlenecks."""

    name: str  # the keras-preact factory name, e.g. "ResNet20V1"
    version: int  # 1 = He et al. 2015, 2 = He et al. 2016 (full pre-activation)
    blocks_per_stage: int  # n: depth 6n+2 (v1, basic) or 9n+2 (v2, bottleneck)

    family = "cifar"

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

# keras_preact.mean_std("imagenet") in pixel units (checked by tests/bench, as CIFAR's).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


class ImageNetArchitecture(NamedTuple):
    """An ImageNet ResNet that torchvision builds too, and the keras-preact options that make
    keras-preact's network the same one (torchvision strides its bottlenecks on the 3x3)."""

    name: str  # the keras-preact factory name, e.g. "ResNet50V1"
    depth: int
    torchvision: str  # torchvision.models' builder, e.g. "resnet50"
    options: tuple[tuple[str, str], ...] = ()

    family = "imagenet"


ARCHITECTURES: dict[str, Architecture | ImageNetArchitecture] = {
    a.name: a
    for a in (
        Architecture("ResNet8V1", 1, 1),  # the reduced (CI) mode's network
        Architecture("ResNet20V1", 1, 3),
        Architecture("ResNet56V1", 1, 9),
        Architecture("ResNet110V1", 1, 18),
        Architecture("ResNet164V2", 2, 18),
        Architecture("ResNet1001V2", 2, 111),
        ImageNetArchitecture("ResNet18V1", 18, "resnet18"),  # the reduced mode's, basic units
        ImageNetArchitecture("ResNet50V1", 50, "resnet50", (("bottleneck_stride", "3x3"),)),
    )
}


def get_architecture(name: str) -> Architecture | ImageNetArchitecture:
    """Look an architecture up by name, case-insensitively; ``UserError`` names the allowed ones."""
    for arch in ARCHITECTURES.values():
        if arch.name.lower() == name.lower():
            return arch
    raise UserError(f"unknown model {name!r}; allowed: {', '.join(ARCHITECTURES)}")


def cifar_architecture(name: str) -> Architecture:
    """``get_architecture`` for the builders of the CIFAR networks: ``UserError`` for another one."""
    arch = get_architecture(name)
    if not isinstance(arch, Architecture):
        raise UserError(f"{arch.name} is an ImageNet network, not a CIFAR one")
    return arch
