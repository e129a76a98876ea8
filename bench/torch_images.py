"""The PyTorch side of the image stages: torchvision's ``ImageFolder`` and ``DataLoader`` with the v1
paper's augmentation, and torchvision's ResNets taking raw pixels.

torchvision is imported here only (`torchvision`): PyPI's torchvision does not load its compiled
operators beside the CPU build of torch, so it comes in as a namespace package
(``keras_preact.convert.sources.import_torchvision_models``). Nothing used here needs those
operators: images are decoded by PIL (``ImageFolder``'s default loader), not ``torchvision.io``.

The augmentation is keras-preact's ``scale`` augmentation (``training.data.images.feed``) written the
way torchvision users write it: the shorter side resized to a random length in [256, 480]
(``RandomResize``; bilinear, antialiased, as keras-preact resizes), a random 224x224 crop, a random
horizontal flip, and AlexNet's PCA lighting (`Lighting`, which torchvision does not have), on raw
[0, 255] float32 pixels, with the parameters keras-preact's feed takes too
(``training.data.images.augmentation``, which imports no TensorFlow).
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from bench.architectures import IMAGENET_MEAN, IMAGENET_STD, get_architecture
from bench.torch_resnet import Normalize
from training.data.images.augmentation import (
    LIGHTING_STD,
    PCA_EIGENVALUES,
    PCA_EIGENVECTORS,
    scale_range,
)


def torchvision() -> types.ModuleType:
    """``torchvision`` with ``models``, ``datasets`` and ``transforms.v2`` imported."""
    from keras_preact.convert.sources import import_torchvision_models

    import_torchvision_models()
    import torchvision
    import torchvision.datasets
    import torchvision.transforms.v2

    return torchvision


class Lighting(nn.Module):
    """AlexNet's PCA colour augmentation on a float ``(3, H, W)`` image of raw pixels: adds
    ``V (alpha * lambda) * 255`` with ``alpha ~ N(0, std)`` drawn per image."""

    def __init__(self, std: float = LIGHTING_STD) -> None:
        super().__init__()
        self.std = std
        self.eigenvalues = torch.tensor(PCA_EIGENVALUES)
        self.eigenvectors = torch.tensor(PCA_EIGENVECTORS)

    def noise(self, alpha: torch.Tensor) -> torch.Tensor:
        """The RGB offset, in raw pixel units, of the coefficients ``alpha``."""
        return self.eigenvectors @ (alpha * self.eigenvalues) * 255.0

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """The image with one draw of the colour noise added."""
        return image + self.noise(torch.randn(3) * self.std).view(3, 1, 1)


def paper_transform(image_size: int = 224) -> nn.Module:
    """PIL image -> float32 ``(3, S, S)`` raw pixels, augmented as described above."""
    v2 = torchvision().transforms.v2
    low, high = scale_range(image_size)
    return v2.Compose(
        [
            v2.RandomResize(low, high + 1),  # [low, high], the upper end excluded by randint
            v2.RandomCrop(image_size),
            v2.RandomHorizontalFlip(),
            v2.PILToTensor(),
            v2.ToDtype(torch.float32, scale=False),
            Lighting(),
        ]
    )


def image_loader(
    folder: Path,
    image_size: int,
    batch: int,
    workers: int,
    *,
    persistent: bool = False,
    seed: int = 0,
) -> torch.utils.data.DataLoader:
    """``ImageFolder(folder)`` with `paper_transform`, shuffled, in full batches, decoded and
    augmented by ``workers`` worker processes (PyTorch's defaults otherwise: two batches ahead
    per worker)."""
    datasets = torchvision().datasets
    # PIL's loader is ImageFolder's default one (torchvision's default image backend); named here
    # because that default is looked up in torchvision's __init__, which is not imported.
    dataset = datasets.ImageFolder(
        str(folder), transform=paper_transform(image_size), loader=datasets.folder.pil_loader
    )
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=persistent and workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )


def endless(loader: torch.utils.data.DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


class ImageNetResNet(nn.Module):
    """torchvision's network behind a normalisation of raw [0, 255] NCHW pixels (ImageNet's
    statistics), as keras-preact's networks built with ``preprocessing="imagenet"`` take them."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for raw NCHW pixels."""
        return self.net(self.normalize(x))


def build_torchvision_resnet(name: str, classes: int) -> ImageNetResNet:
    """torchvision's network for a benchmark model name (``ResNet50V1``: ``resnet50``)."""
    arch = get_architecture(name)
    if arch.family != "imagenet":
        raise ValueError(f"{name} is a CIFAR network, not one of torchvision's")
    return ImageNetResNet(getattr(torchvision().models, arch.torchvision)(num_classes=classes))
