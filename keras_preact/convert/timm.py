"""timm's pre-activation ResNets with batch norm (``resnetv2_50``, ``resnetv2_101``) into keras-preact v2.

Key layout (``timm.models.resnetv2.ResNetV2`` with ``PreActBottleneck`` and ``BatchNormAct2d``)::

    stem.conv                              7×7/2 stem convolution -> stem_conv
    stages.{S}.blocks.{U}.norm{I}          BN(-ReLU) before conv{I} -> stage{S+1}_unit{U+1}_bn{I}
    stages.{S}.blocks.{U}.conv{I}          unit convolutions       -> stage{S+1}_unit{U+1}_conv{I}
    stages.{S}.blocks.{U}.downsample.conv  1×1 projection          -> stage{S+1}_unit{U+1}_shortcut_conv
    norm                                   final BN(-ReLU)         -> post_bn
    head.fc                                classifier, a 1×1 Conv2d (4-D weight) -> logits

What timm computes is keras-preact's ``ResNet50V2`` / ``ResNet101V2`` as they are: the stem is a
bare convolution followed by a 3×3/2 max-pool padded by one pixel (that never wins); every unit is
BN-ReLU-conv with the stride on the 3×3 (keras-preact's v2 default); the projection takes the
unit's pre-activated input, like keras-preact's; the last unit is followed by BN-ReLU, global
average pooling and the classifier; batch-norm epsilon 1e-5. The one difference is the input:
timm's ``resnetv2_50.a1h_in1k`` and ``resnetv2_101.a1h_in1k`` weights expect pixels scaled to
[-1, 1] (timm's "inception" mean and standard deviation 0.5), which is
``preprocessing="imagenet_inception"``, not the ImageNet statistics.

Other ResNetV2 variants are refused: BiT (``resnetv2_50x1_bit``: weight-standardised convolutions
and group norm) and the ``d`` variants (deep 3-convolution stem, average-pool projections).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from keras_preact.convert.layout import Rule, SourceArchitecture, checkpoint_depth, place_torch

NAME = "timm"
DESCRIPTION = "timm resnetv2_50/101 (stem.conv, stages.N.blocks.N.norm1/conv1..., norm, head.fc)"
FORMATS = ("safetensors", "pytorch")
STAGE_BASE, UNIT_BASE = 0, 0
_BLOCK = r"stages\.(?P<stage>[0-3])\.blocks\.(?P<unit>\d+)"
RULES = (
    Rule(r"stem\.conv", "stem_conv", "conv"),
    Rule(_BLOCK + r"\.conv(?P<i>[123])", "stage{stage}_unit{unit}_conv{i}", "conv"),
    Rule(_BLOCK + r"\.norm(?P<i>[123])", "stage{stage}_unit{unit}_bn{i}", "bn"),
    Rule(_BLOCK + r"\.downsample\.conv", "stage{stage}_unit{unit}_shortcut_conv", "conv"),
    Rule(r"norm", "post_bn", "bn"),
    Rule(r"head\.fc", "logits", "dense"),
)


def matches(tensors: Mapping[str, np.ndarray]) -> bool:
    """A timm ResNetV2: ``stem``, ``stages.N.blocks.N`` and a final ``norm``."""
    return (
        any(k.startswith("stem.") for k in tensors) and "stages.0.blocks.0.conv1.weight" in tensors
    )


def describe(tensors: Mapping[str, np.ndarray]) -> SourceArchitecture:
    """The keras-preact network of a timm ResNetV2 checkpoint (or a ValueError for variants)."""
    if "stem.conv.weight" not in tensors:
        raise ValueError(
            "the timm ResNetV2 checkpoint has a deep stem (stem.conv1/conv2/conv3: a 'd' variant "
            "such as resnetv2_50d), which keras-preact does not build; it converts timm "
            "resnetv2_50 and resnetv2_101"
        )
    if "norm.running_var" not in tensors:
        raise ValueError(
            "the timm ResNetV2 checkpoint has no batch-norm statistics: it is a group-norm "
            "(BiT, resnetv2_*_bit) network, which keras-preact does not build; it converts timm "
            "resnetv2_50 and resnetv2_101"
        )
    if any(".downsample.pool" in k or ".downsample.norm" in k for k in tensors):
        raise ValueError(
            "the timm ResNetV2 checkpoint projects its shortcuts with average pooling or batch "
            "norm ('d' variants), which keras-preact does not build; it converts timm "
            "resnetv2_50 and resnetv2_101"
        )
    unit = "bottleneck" if "stages.0.blocks.0.conv3.weight" in tensors else "basic"
    depth = checkpoint_depth(tensors, _BLOCK, STAGE_BASE, "imagenet", unit, "timm ResNetV2")
    fc = tensors.get("head.fc.weight")
    return SourceArchitecture(
        layout=NAME,
        source=f"timm resnetv2_{depth}",
        family="imagenet",
        version="v2",
        depth=depth,
        unit=unit,
        options={"bottleneck_stride": "3x3"} if unit == "bottleneck" else {},
        classes=None if fc is None else int(fc.shape[0]),
        preprocessing="imagenet_inception",
        notes=(
            "timm's resnetv2 weights take pixels scaled to [-1, 1] "
            "(preprocessing 'imagenet_inception'), not the ImageNet mean and std",
        ),
    )


def place(tensors: Mapping[str, np.ndarray], source: SourceArchitecture):
    """keras-preact weights of every tensor (see ``layout.place_torch``)."""
    return place_torch(tensors, RULES, stage_base=STAGE_BASE, unit_base=UNIT_BASE, layout=NAME)
