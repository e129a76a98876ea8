"""torchvision's ResNets (``resnet18/34/50/101/152``) into keras-preact's v1 ImageNet networks.

Key layout (``torchvision.models.resnet``; timm's ``resnet18``…``resnet152`` use the same names)::

    conv1                      7×7/2 stem convolution            -> stem_conv
    bn1                        its batch norm                    -> stem_bn
    layer{S}.{U}.conv{I}       unit convolutions (I = 1, 2[, 3]) -> stage{S}_unit{U+1}_conv{I}
    layer{S}.{U}.bn{I}         their batch norms                 -> stage{S}_unit{U+1}_bn{I}
    layer{S}.{U}.downsample.0  1×1 projection                    -> stage{S}_unit{U+1}_shortcut_conv
    layer{S}.{U}.downsample.1  its batch norm                    -> stage{S}_unit{U+1}_shortcut_bn
    fc                         classifier (Linear)               -> logits

torchvision strides its bottlenecks on the 3×3 convolution ("ResNet v1.5"), so the keras-preact
network is built with ``bottleneck_stride="3x3"`` (keras-preact's v1 default, ``"1x1"``, is the
original paper's). Batch-norm epsilon 1e-5, as keras-preact's. Inputs: RGB, normalised with the
ImageNet mean and standard deviation (``preprocessing="imagenet"``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from keras_preact.convert.layout import Rule, SourceArchitecture, checkpoint_depth, place_torch

NAME = "torchvision"
DESCRIPTION = "torchvision resnet18/34/50/101/152 (conv1, bn1, layer1-4, fc)"
FORMATS = ("pytorch", "safetensors")
STAGE_BASE, UNIT_BASE = 1, 0
RULES = (
    Rule(r"conv1", "stem_conv", "conv"),
    Rule(r"bn1", "stem_bn", "bn"),
    Rule(r"layer(?P<stage>[1-4])\.(?P<unit>\d+)\.conv(?P<i>[123])", "stage{stage}_unit{unit}_conv{i}", "conv"),
    Rule(r"layer(?P<stage>[1-4])\.(?P<unit>\d+)\.bn(?P<i>[123])", "stage{stage}_unit{unit}_bn{i}", "bn"),
    Rule(r"layer(?P<stage>[1-4])\.(?P<unit>\d+)\.downsample\.0", "stage{stage}_unit{unit}_shortcut_conv", "conv"),
    Rule(r"layer(?P<stage>[1-4])\.(?P<unit>\d+)\.downsample\.1", "stage{stage}_unit{unit}_shortcut_bn", "bn"),
    Rule(r"fc", "logits", "dense"),
)  # fmt: skip


def matches(tensors: Mapping[str, np.ndarray]) -> bool:
    """A torchvision ResNet: a 7×7 ``conv1``, ``bn1``, four ``layer`` stages and ``fc``."""
    conv1 = tensors.get("conv1.weight")
    return (
        conv1 is not None
        and conv1.ndim == 4
        and conv1.shape[2:] == (7, 7)
        and "bn1.running_var" in tensors
        and "layer4.0.conv1.weight" in tensors
    )


def describe(tensors: Mapping[str, np.ndarray]) -> SourceArchitecture:
    """The keras-preact network of a torchvision ResNet checkpoint."""
    unit = "bottleneck" if "layer1.0.conv3.weight" in tensors else "basic"
    depth = checkpoint_depth(
        tensors, r"layer(?P<stage>[1-4])\.(?P<unit>\d+)", STAGE_BASE, "imagenet", unit, NAME
    )
    fc = tensors.get("fc.weight")
    return SourceArchitecture(
        layout=NAME,
        source=f"torchvision resnet{depth}",
        family="imagenet",
        version="v1",
        depth=depth,
        unit=unit,
        options={"bottleneck_stride": "3x3"} if unit == "bottleneck" else {},
        classes=None if fc is None else int(fc.shape[0]),
        preprocessing="imagenet",
    )


def place(tensors: Mapping[str, np.ndarray], source: SourceArchitecture):
    """keras-preact weights of every tensor (see ``layout.place_torch``)."""
    return place_torch(tensors, RULES, stage_base=STAGE_BASE, unit_base=UNIT_BASE, layout=NAME)
