"""The common PyTorch CIFAR ResNets into keras-preact's CIFAR networks (v1 and v2).

**v1** (He et al. 2015, section 4.2), the layout of akamaster/pytorch_resnet_cifar10 (ResNet-20,
32, 44, 56, 110, 1202)::

    conv1                               3×3 stem convolution (16 channels) -> stem_conv
    bn1                                 its batch norm                     -> stem_bn
    layer{S}.{U}.conv{I}, .bn{I}        unit convolutions and batch norms  -> stage{S}_unit{U+1}_conv{I}, _bn{I}
    layer{S}.{U}.shortcut.0, .1         (option B) 1×1 projection and BN   -> stage{S}_unit{U+1}_shortcut_conv, _bn
      (or .downsample.0, .1)
    linear (or fc)                      classifier                         -> logits

Option A shortcuts have no parameters. akamaster's option A appends the zero channels half
before and half after the subsampled input (``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))``);
keras-preact's appends them after, as He et al.'s Torch code does. The two compute the same
network up to an order of the channels, so the converter reorders every tensor that reads or
writes the residual stream (``option_a="split"``, the default); ``option_a="after"`` takes
checkpoints whose code appends zeros after the input, as keras-preact does. The logits are the
same either way; the features of a ``include_top=False`` model come in keras-preact's channel
order, a fixed permutation of akamaster's. akamaster's current
code names some modules ``compressible_conv1``, ``compressible_linear``: that prefix is ignored.

**v2** (He et al. 2016), the pre-activation layout::

    conv1                               3×3 stem convolution (no batch norm after it) -> stem_conv
    layer{S}.{U}.bn{I}, .conv{I}        BN-ReLU before each convolution    -> stage{S}_unit{U+1}_bn{I}, _conv{I}
    layer{S}.{U}.shortcut.0             1×1 projection (no batch norm)     -> stage{S}_unit{U+1}_shortcut_conv
    bn                                  final BN-ReLU                      -> post_bn
    linear (or fc)                      classifier                         -> logits

The keys do not say where a pre-activation unit's shortcut starts; this layout is read as He et
al.'s code (and keras-preact) computes it: a projection takes the unit's pre-activated input
``relu(bn1(x))``, an identity shortcut takes ``x``, except in the first unit, where both the
branch and the shortcut start from ``relu(bn1(stem))``. bearpaw/pytorch-classification's
``PreResNet`` names its projection ``downsample.0`` and applies it to the raw input ``x``: that
network is not a keras-preact one, and such checkpoints are refused.

Both: bottleneck units (``conv3``/``bn3``) stride on the 3×3, as these PyTorch codes do
(``bottleneck_stride="3x3"``); batch-norm epsilon 1e-5. The checkpoint does not say how its inputs
were normalised (akamaster's trainer uses ImageNet's mean and standard deviation): pass the
``preprocessing`` it was trained with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from keras_preact.catalogue import units_per_stage
from keras_preact.convert.layout import (
    Placed,
    Rule,
    SourceArchitecture,
    checkpoint_depth,
    place_torch,
)

NAME = "pytorch-cifar"
DESCRIPTION = (
    "PyTorch CIFAR ResNets: v1 akamaster-style (conv1, bn1, layer1-3, linear/fc; option A or "
    "shortcut.0/.1) and v2 pre-activation (conv1, layer1-3 bn1/conv1..., shortcut.0, bn, linear/fc)"
)
FORMATS = ("pytorch", "safetensors")
OPTION_A = ("split", "after")
STAGE_BASE, UNIT_BASE = 1, 0
_UNIT = r"layer(?P<stage>[1-3])\.(?P<unit>\d+)"
_UNIT_RULES = (
    Rule(_UNIT + r"\.conv(?P<i>[123])", "stage{stage}_unit{unit}_conv{i}", "conv"),
    Rule(_UNIT + r"\.bn(?P<i>[123])", "stage{stage}_unit{unit}_bn{i}", "bn"),
)
V1_RULES = (
    Rule(r"conv1", "stem_conv", "conv"),
    Rule(r"bn1", "stem_bn", "bn"),
    *_UNIT_RULES,
    Rule(_UNIT + r"\.(?:shortcut|downsample)\.0", "stage{stage}_unit{unit}_shortcut_conv", "conv"),
    Rule(_UNIT + r"\.(?:shortcut|downsample)\.1", "stage{stage}_unit{unit}_shortcut_bn", "bn"),
    Rule(r"linear|fc", "logits", "dense"),
)
V2_RULES = (
    Rule(r"conv1", "stem_conv", "conv"),
    *_UNIT_RULES,
    Rule(_UNIT + r"\.shortcut\.0", "stage{stage}_unit{unit}_shortcut_conv", "conv"),
    Rule(r"bn", "post_bn", "bn"),
    Rule(r"linear|fc", "logits", "dense"),
)


def normalize(tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Names without akamaster's ``compressible_`` prefix."""
    return {re.sub(r"(^|\.)compressible_", r"\1", k): v for k, v in tensors.items()}


def matches(tensors: Mapping[str, np.ndarray]) -> bool:
    """A CIFAR ResNet: a 3×3 ``conv1`` and three ``layer`` stages."""
    tensors = normalize(tensors)
    conv1 = tensors.get("conv1.weight")
    return (
        conv1 is not None
        and conv1.ndim == 4
        and conv1.shape[2:] == (3, 3)
        and "layer3.0.conv1.weight" in tensors
        and not any(k.startswith("layer4.") for k in tensors)
    )


def describe(tensors: Mapping[str, np.ndarray], option_a: str = "split") -> SourceArchitecture:
    """The keras-preact network of a PyTorch CIFAR ResNet checkpoint."""
    if option_a not in OPTION_A:
        raise ValueError(
            f"unknown option_a {option_a!r}; expected one of {', '.join(map(repr, OPTION_A))}"
        )
    tensors = normalize(tensors)
    v1, v2 = "bn1.running_var" in tensors, "bn.running_var" in tensors
    if v1 == v2:
        raise ValueError(
            "the PyTorch CIFAR checkpoint has "
            + ("both a stem batch norm (bn1) and a final one (bn)" if v1 else "neither a stem batch norm (bn1, v1) nor a final one (bn, v2)")
            + ": not a layout keras-preact converts"
        )  # fmt: skip
    version = "v1" if v1 else "v2"
    if version == "v2" and any(".downsample." in k for k in tensors):
        raise ValueError(
            "the pre-activation CIFAR checkpoint projects its shortcuts with downsample.0, the "
            "layout of bearpaw/pytorch-classification's PreResNet, which applies the projection "
            "to the unit's raw input; keras-preact's v2 units (as He et al.'s code) project the "
            "pre-activated input, so this network cannot be converted exactly"
        )
    unit = "bottleneck" if "layer1.0.conv3.weight" in tensors else "basic"
    depth = checkpoint_depth(tensors, _UNIT, STAGE_BASE, "cifar", unit, "PyTorch CIFAR")
    projected = {k for k in tensors if re.match(_UNIT + r"\.(shortcut|downsample)\.0\.weight$", k)}
    if not projected:
        projection = "A"
    elif len(projected) == sum(units_per_stage("cifar", depth, unit)[1]):
        projection = "C"
    else:
        projection = "B"
    options = {"projection": projection}
    if unit == "bottleneck":
        options["bottleneck_stride"] = "3x3"
    fc = tensors.get("linear.weight", tensors.get("fc.weight"))
    notes = []
    if projection == "A" and option_a == "split":
        notes.append(
            "option A zero channels split before and after the input's (akamaster): channels "
            "reordered so that keras-preact's option A (zeros after) computes the same"
        )
    return SourceArchitecture(
        layout=NAME,
        source=f"PyTorch CIFAR ResNet-{depth} {version}",
        family="cifar",
        version=version,
        depth=depth,
        unit=unit,
        options=options,
        classes=None if fc is None else int(fc.shape[0]),
        preprocessing=None,
        notes=tuple(notes),
        layout_options={"option_a": option_a},
    )


def place(tensors: Mapping[str, np.ndarray], source: SourceArchitecture):
    """keras-preact weights of every tensor, channels reordered for akamaster's option A."""
    rules = V1_RULES if source.version == "v1" else V2_RULES
    placed, ignored = place_torch(
        normalize(tensors), rules, stage_base=STAGE_BASE, unit_base=UNIT_BASE, layout=NAME
    )
    if source.options["projection"] != "C" and source.layout_options.get("option_a") == "split":
        _reorder_option_a_channels(placed, source)
    return placed, ignored


def _reorder_option_a_channels(
    placed: dict[tuple[str, str], Placed], source: SourceArchitecture
) -> None:
    """Reorder channels so that keras-preact's option A (zeros after) equals akamaster's (split).

    ``order[s][k]`` is the checkpoint's channel of keras-preact's channel ``k`` in the residual
    stream of stage ``s``. The stem defines stage 0's order. Where option A widens the stream from
    ``c`` to ``C`` channels, keras-preact's channel ``k < c`` carries the input's channel ``k``,
    which the checkpoint put at ``(C - c) // 2 + order[k]``; its zero channels take the
    checkpoint's zero channels. A projection defines its own output order.
    """

    def get(layer, role):
        return placed.get((layer, role))

    _, counts = units_per_stage("cifar", source.depth, source.unit)
    order = np.arange(get("stem_conv", "kernel").value.shape[-1])
    stream_in: dict[str, np.ndarray] = {}
    stream_out: dict[str, np.ndarray] = {}
    for s, units in enumerate(counts, start=1):
        for u in range(1, units + 1):
            prefix = f"stage{s}_unit{u}"
            last = max(i for i in (1, 2, 3) if get(f"{prefix}_conv{i}", "kernel"))
            width = get(f"{prefix}_conv{last}", "kernel").value.shape[-1]
            stream_in[prefix] = order
            if get(f"{prefix}_shortcut_conv", "kernel") is None and width != len(order):
                pad = (width - len(order)) // 2
                rest = np.setdiff1d(np.arange(width), pad + order)
                order = np.concatenate([pad + order, rest])
            elif get(f"{prefix}_shortcut_conv", "kernel") is not None:
                order = np.arange(width)
            stream_out[prefix] = order

    def permute(layer, role, axis, index):
        item = get(layer, role)
        if item is not None:
            item.value = np.ascontiguousarray(np.take(item.value, index, axis=axis))

    bn_roles = ("gamma", "beta", "moving_mean", "moving_variance")
    for prefix, index in stream_in.items():
        permute(f"{prefix}_conv1", "kernel", 2, index)
        permute(f"{prefix}_shortcut_conv", "kernel", 2, index)
        if source.version == "v2":
            for role in bn_roles:
                permute(f"{prefix}_bn1", role, 0, index)
    for prefix, index in stream_out.items():
        last = max(i for i in (1, 2, 3) if get(f"{prefix}_conv{i}", "kernel"))
        permute(f"{prefix}_conv{last}", "kernel", 3, index)
        if source.version == "v1":
            for role in bn_roles:
                permute(f"{prefix}_bn{last}", role, 0, index)
    for role in bn_roles:
        permute("post_bn", role, 0, order)
    permute("logits", "kernel", 0, order)
