"""Residual units of both papers, in one place.

A unit is ``out = after_add(shortcut(x) + F(x))``. The v1 unit and the v2 unit, as the papers draw
them (basic units; a bottleneck has three convolutions, 1×1, 3×3, 1×1 with 4× expansion)::

    v1 ("original"):     x ─┬─ conv-BN-ReLU ─ conv-BN ─(+)─ ReLU ─▶
                            └──────────── identity ────┘
    v2 ("full_preact"):  x ─┬─ BN-ReLU-conv ─ BN-ReLU-conv ─(+)─▶
                            └──────────── identity ─────────┘

``basic_v1``, ``bottleneck_v1``, ``basic_v2`` and ``bottleneck_v2`` below are these units, one
layer a line. The v2 paper's Fig. 4 compares three more *placements* of BN and ReLU
(``bn_after_add``, ``relu_before_add``, ``relu_preact``), written the same way for either unit
kind. ``PLACEMENTS`` names all five and says what each needs from the stem and the head: units
that start with their own activation leave it out of the stem and add it after the last unit.

Every unit ends in ``Unit.add_shortcut``, the shortcut and the addition, where the other choices
apply:

* ``unit``: ``"basic"`` (two 3×3 convs) or ``"bottleneck"`` (1×1, 3×3, 1×1 with 4× expansion).
* ``shortcut``: how the identity path is treated (Fig. 2 / Table 1 of the v2 paper): ``identity``,
  ``scaling`` (λ·x, and F scaled by 1−λ), ``exclusive_gating`` ((1−g)·x + g·F),
  ``shortcut_gating`` ((1−g)·x + F), ``conv`` (1×1 conv on every shortcut), ``dropout`` (dropout
  on x, kept at expectation 1−p as in the paper); and ``none``: no shortcut and no addition, the
  v1 paper's *plain* networks (section 4.1).
* ``projection``: what an identity shortcut does where the shape changes: ``"A"`` zero-padded
  channels and strided subsampling (the v1 CIFAR nets), ``"B"`` a 1×1 projection there only,
  ``"C"`` a 1×1 projection on every unit.

Every strided convolution pads symmetrically, as the papers' Torch code does (a 3×3 stride-2
convolution pads one pixel on every side), so that the residual branch and the shortcut sample the
same pixels: both look at pixels 0, 2, 4, … of the input.

Layer names are ``{prefix}_{role}``, e.g. ``stage2_unit3_conv1``, ``stage2_unit3_bn1``,
``stage2_unit3_conv1_pad``, ``stage2_unit3_shortcut_conv``, ``stage2_unit3_add``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import layers

from keras_preact.catalogue import UNITS as UNITS

SHORTCUTS = (
    "identity",
    "scaling",
    "exclusive_gating",
    "shortcut_gating",
    "conv",
    "dropout",
    "none",
)
PROJECTIONS = ("A", "B", "C")
BOTTLENECK_STRIDES = ("1x1", "3x3")
EXPANSION = {"basic": 1, "bottleneck": 4}


@dataclasses.dataclass(frozen=True)
class LayerFactory:
    """Creates the convolutions and normalisations of a network with one set of options.

    Convolutions have no bias: BN follows them or, in pre-activation units, the next unit's BN
    removes any constant offset. Weight decay is the papers' SGD weight decay ``wd``: an L2 penalty
    of ``wd / 2 · ||W||²`` has exactly the gradient ``wd · W`` that SGD's decay adds.
    """

    weight_decay: float = 0.0
    kernel_initializer: Any = "he_normal_fan_out"
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    synchronized_bn: bool = False
    data_format: str = "channels_last"

    @property
    def channel_axis(self) -> int:
        """Axis of the channels in the feature maps."""
        return -1 if self.data_format == "channels_last" else 1

    def initializer(self):
        """The kernel initializer: He et al.'s ``N(0, 2 / (k·k·c_out))`` unless told otherwise."""
        if self.kernel_initializer == "he_normal_fan_out":
            # He et al. initialise with N(0, 2 / (k·k·c_out)), i.e. fan-out, not Keras' fan-in.
            return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")
        return keras.initializers.get(self.kernel_initializer)

    def regularizer(self):
        """The L2 kernel regularizer for the configured weight decay, or None."""
        return keras.regularizers.L2(self.weight_decay / 2) if self.weight_decay else None

    def conv(self, x, filters: int, kernel: int, stride: int, name: str, **kwargs):
        """Apply a bias-free He-initialised convolution to ``x``.

        Stride 1 pads ``same``; a strided convolution pads ``(kernel - 1) // 2`` on every side in
        its own layer ``{name}_pad`` and then convolves ``valid``, as the papers' code does.
        """
        padding = "same"
        if stride > 1:
            if kernel > 1:
                x = self.pad(x, (kernel - 1) // 2, f"{name}_pad")
            padding = "valid"
        return layers.Conv2D(
            filters,
            kernel,
            strides=stride,
            padding=padding,
            use_bias=kwargs.pop("use_bias", False),
            kernel_initializer=self.initializer(),
            kernel_regularizer=self.regularizer(),
            data_format=self.data_format,
            name=name,
            **kwargs,
        )(x)

    def pad(self, x, pixels: int, name: str):
        """Zero-pad ``pixels`` on every side of the feature map."""
        return layers.ZeroPadding2D(pixels, data_format=self.data_format, name=name)(x)

    def bn(self, x, name: str):
        """Batch normalisation with the papers' (Torch) momentum and epsilon."""
        return layers.BatchNormalization(
            axis=self.channel_axis,
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            synchronized=self.synchronized_bn,
            name=name,
        )(x)

    def relu(self, x, name: str):
        """ReLU."""
        return layers.ReLU(name=name)(x)

    def subsample_and_pad_channels(self, x, stride: int, out_channels: int, name: str):
        """Option A: every ``stride``-th pixel, then zero channels appended up to ``out_channels``.

        A 1×1 convolution with a fixed 0/1 kernel (frozen, without weight decay): exactly the
        subsampled input followed by zeros, as one op that every runtime and TFLite's XNNPACK
        delegate take. The kernel is set here and saved with the weights.
        """
        channels = x.shape[self.channel_axis]
        conv = layers.Conv2D(
            out_channels,
            1,
            strides=stride,
            use_bias=False,
            kernel_initializer="zeros",
            trainable=False,
            data_format=self.data_format,
            name=name,
        )
        y = conv(x)
        conv.kernel.assign(np.eye(channels, out_channels, dtype="float32")[None, None])
        return y


@dataclasses.dataclass(frozen=True)
class UnitSpec:
    """Everything that is the same for every unit of one network."""

    unit: str = "basic"
    placement: str = "full_preact"
    shortcut: str = "identity"
    projection: str = "B"
    bottleneck_stride: str = "3x3"
    shortcut_scale: float = 0.5
    gate_bias: float = -6.0
    shortcut_dropout: float = 0.5

    def branch(self, filters: int, stride: int) -> list[tuple[int, int, int]]:
        """``(kernel, filters, stride)`` of each convolution of the residual branch."""
        if self.unit == "basic":
            return [(3, filters, stride), (3, filters, 1)]
        s1, s3 = (stride, 1) if self.bottleneck_stride == "1x1" else (1, stride)
        return [(1, filters, s1), (3, filters, s3), (1, filters * EXPANSION["bottleneck"], 1)]


@dataclasses.dataclass(frozen=True)
class Unit:
    """One residual unit of a network: its layer factory and options, width, stride and name.

    Its methods create the unit's layers, named ``{prefix}_{role}``.
    """

    f: LayerFactory
    spec: UnitSpec
    filters: int
    stride: int
    prefix: str
    first: bool = False
    """The first unit after the stem: in pre-activation networks its shortcut starts from the
    activated input, which is the stem's activation (the v2 paper's appendix)."""

    @property
    def bottleneck_strides(self) -> tuple[int, int]:
        """Strides of a bottleneck's 1×1 and 3×3 convolutions: the unit's stride is on one."""
        return (self.stride, 1) if self.spec.bottleneck_stride == "1x1" else (1, self.stride)

    @property
    def branch(self) -> list[tuple[int, int, int]]:
        """``(kernel, filters, stride)`` of each convolution of the residual branch."""
        return self.spec.branch(self.filters, self.stride)

    def conv(self, x, role: str, kernel: int, filters: int, stride: int):
        """A bias-free convolution (``LayerFactory.conv``)."""
        return self.f.conv(x, filters, kernel, stride, f"{self.prefix}_{role}")

    def bn(self, x, role: str):
        """Batch normalisation."""
        return self.f.bn(x, f"{self.prefix}_{role}")

    def relu(self, x, role: str):
        """ReLU."""
        return self.f.relu(x, f"{self.prefix}_{role}")

    def add_shortcut(self, x, y, preactivated=None):
        """``shortcut(x) + y``, the end of every unit, with the v2 paper's shortcut kinds.

        Args:
            x: the unit's input.
            y: the output of the residual branch F.
            preactivated: in a pre-activation unit, its input after the first activation. A 1×1
                projection starts from it (it needs normalised input) and has no BN of its own;
                so does the identity of the unit after the stem.
        """
        spec, f, prefix, stride = self.spec, self.f, self.prefix, self.stride
        if spec.shortcut == "none":  # a plain network: no shortcut, no addition
            return y
        out_channels = y.shape[f.channel_axis]
        reshape = stride != 1 or x.shape[f.channel_axis] != out_channels
        project = (
            spec.shortcut == "conv"
            or spec.projection == "C"
            or (reshape and spec.projection == "B")
        )
        s = x
        if preactivated is not None and (project or self.first):
            s = preactivated
        if project:
            s = f.conv(s, out_channels, 1, stride, f"{prefix}_shortcut_conv")
            if preactivated is None:
                s = f.bn(s, f"{prefix}_shortcut_bn")
        elif reshape:  # projection "A"
            s = f.subsample_and_pad_channels(s, stride, out_channels, f"{prefix}_shortcut_pad")

        if spec.shortcut == "scaling":  # λ·x + (1−λ)·F
            lam = spec.shortcut_scale
            s = layers.Rescaling(lam, name=f"{prefix}_shortcut_scale")(s)
            y = layers.Rescaling(1.0 - lam, name=f"{prefix}_residual_scale")(y)
        elif spec.shortcut in ("exclusive_gating", "shortcut_gating"):
            # g(x) = sigmoid(W_g x + b_g), a 1×1 conv on the unit's input; b_g < 0 starts near
            # identity. Exclusive: (1−g)·x + g·F; shortcut-only: (1−g)·x + F.
            gate = f.conv(
                x,
                out_channels,
                1,
                stride,
                f"{prefix}_gate_conv",
                use_bias=True,
                bias_initializer=keras.initializers.Constant(spec.gate_bias),
                activation="sigmoid",
            )
            keep = layers.Rescaling(-1.0, offset=1.0, name=f"{prefix}_gate_complement")(gate)
            s = layers.Multiply(name=f"{prefix}_shortcut_gate")([keep, s])
            if spec.shortcut == "exclusive_gating":
                y = layers.Multiply(name=f"{prefix}_residual_gate")([gate, y])
        elif spec.shortcut == "dropout":
            # Keras' dropout rescales kept values by 1/(1-p); the paper's does not, so that the
            # shortcut is λ = 1-p in expectation. Scale back to match.
            p = spec.shortcut_dropout
            s = layers.Dropout(p, name=f"{prefix}_shortcut_dropout")(s)
            s = layers.Rescaling(1.0 - p, name=f"{prefix}_shortcut_keep")(s)
        return layers.Add(name=f"{prefix}_add")([s, y])


# The standard units, as the papers draw them ---------------------------------------------------


def basic_v1(x, u: Unit):
    """The v1 paper's basic unit (its Fig. 2): conv-BN-ReLU, conv-BN, addition, ReLU."""
    y = u.conv(x, "conv1", 3, u.filters, u.stride)
    y = u.bn(y, "bn1")
    y = u.relu(y, "relu1")
    y = u.conv(y, "conv2", 3, u.filters, 1)
    y = u.bn(y, "bn2")
    y = u.add_shortcut(x, y)
    return u.relu(y, "out_relu")


def bottleneck_v1(x, u: Unit):
    """The v1 paper's bottleneck (its Fig. 5): 1×1, 3×3, 1×1 (4× wider) conv-BN, ReLU between
    and after the addition."""
    stride1, stride2 = u.bottleneck_strides
    y = u.conv(x, "conv1", 1, u.filters, stride1)
    y = u.bn(y, "bn1")
    y = u.relu(y, "relu1")
    y = u.conv(y, "conv2", 3, u.filters, stride2)
    y = u.bn(y, "bn2")
    y = u.relu(y, "relu2")
    y = u.conv(y, "conv3", 1, u.filters * EXPANSION["bottleneck"], 1)
    y = u.bn(y, "bn3")
    y = u.add_shortcut(x, y)
    return u.relu(y, "out_relu")


def basic_v2(x, u: Unit):
    """The v2 paper's full pre-activation unit (its Fig. 1b): BN-ReLU-conv twice, then the
    addition and nothing after it."""
    a = u.bn(x, "bn1")
    a = u.relu(a, "relu1")
    y = u.conv(a, "conv1", 3, u.filters, u.stride)
    y = u.bn(y, "bn2")
    y = u.relu(y, "relu2")
    y = u.conv(y, "conv2", 3, u.filters, 1)
    return u.add_shortcut(x, y, preactivated=a)


def bottleneck_v2(x, u: Unit):
    """The v2 paper's full pre-activation bottleneck: BN-ReLU-conv 1×1, 3×3, 1×1 (4× wider),
    then the addition and nothing after it."""
    stride1, stride2 = u.bottleneck_strides
    a = u.bn(x, "bn1")
    a = u.relu(a, "relu1")
    y = u.conv(a, "conv1", 1, u.filters, stride1)
    y = u.bn(y, "bn2")
    y = u.relu(y, "relu2")
    y = u.conv(y, "conv2", 3, u.filters, stride2)
    y = u.bn(y, "bn3")
    y = u.relu(y, "relu3")
    y = u.conv(y, "conv3", 1, u.filters * EXPANSION["bottleneck"], 1)
    return u.add_shortcut(x, y, preactivated=a)


# The other placements of the v2 paper's Fig. 4, for basic units and bottlenecks alike -----------


def bn_after_add(x, u: Unit):
    """Fig. 4(b): conv-BN-ReLU, …, the last conv bare; addition; BN-ReLU."""
    *inner, (kernel, filters, stride) = u.branch
    y = x
    for i, (k, n, s) in enumerate(inner, start=1):
        y = u.conv(y, f"conv{i}", k, n, s)
        y = u.bn(y, f"bn{i}")
        y = u.relu(y, f"relu{i}")
    y = u.conv(y, f"conv{len(inner) + 1}", kernel, filters, stride)
    y = u.add_shortcut(x, y)
    y = u.bn(y, "out_bn")
    return u.relu(y, "out_relu")


def relu_before_add(x, u: Unit):
    """Fig. 4(c): conv-BN-ReLU for every conv, the last ReLU before the addition."""
    y = x
    for i, (k, n, s) in enumerate(u.branch, start=1):
        y = u.conv(y, f"conv{i}", k, n, s)
        y = u.bn(y, f"bn{i}")
        y = u.relu(y, f"relu{i}")
    return u.add_shortcut(x, y)


def relu_preact(x, u: Unit):
    """Fig. 4(d): ReLU-only pre-activation: ReLU-conv-BN for every conv, then the addition."""
    a = u.relu(x, "relu1")
    y = a
    for i, (k, n, s) in enumerate(u.branch, start=1):
        if i > 1:
            y = u.relu(y, f"relu{i}")
        y = u.conv(y, f"conv{i}", k, n, s)
        y = u.bn(y, f"bn{i}")
    return u.add_shortcut(x, y, preactivated=a)


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a network puts BN and ReLU: its units, and what its stem and head add around them.

    Post-activation units (v1) expect an activated input, so the stem ends in BN-ReLU. Units that
    start with their own activation (pre-activation) leave it out of the stem and add it after
    the last unit, whose sum is not activated.
    """

    basic: Callable[[Any, Unit], Any]
    """The basic unit (two 3×3 convolutions)."""
    bottleneck: Callable[[Any, Unit], Any]
    """The bottleneck unit (1×1, 3×3, 1×1)."""
    preactivation: bool
    """Whether the units activate before their convolutions (the v2 family)."""
    stem_bn: bool = False
    """Whether the stem's convolution is followed by BN ..."""
    stem_relu: bool = False
    """... and ReLU."""
    post_bn: bool = False
    """Whether BN follows the last unit ..."""
    post_relu: bool = False
    """... and ReLU."""


PLACEMENTS: dict[str, Placement] = {
    "original": Placement(  # the v1 paper, Fig. 4(a)
        basic_v1, bottleneck_v1, preactivation=False, stem_bn=True, stem_relu=True
    ),
    "bn_after_add": Placement(
        bn_after_add, bn_after_add, preactivation=False, stem_bn=True, stem_relu=True
    ),
    "relu_before_add": Placement(
        relu_before_add, relu_before_add, preactivation=False, stem_bn=True, stem_relu=True
    ),
    "relu_preact": Placement(  # its units start with ReLU: the stem keeps its BN
        relu_preact, relu_preact, preactivation=True, stem_bn=True, post_relu=True
    ),
    "full_preact": Placement(  # the v2 paper, Fig. 4(e)
        basic_v2, bottleneck_v2, preactivation=True, post_bn=True, post_relu=True
    ),
}
"""The v2 paper's five activation placements (Fig. 4), by name."""


def is_preact(placement: str) -> bool:
    """Whether a placement activates before its convolutions (the v2 family)."""
    return PLACEMENTS[placement].preactivation


def residual_unit(
    x,
    f: LayerFactory,
    spec: UnitSpec,
    *,
    filters: int,
    stride: int,
    prefix: str,
    first: bool = False,
):
    """Apply one residual unit to ``x`` and return its output tensor.

    Args:
        x: input feature map (a symbolic Keras tensor).
        f: layer factory (weight decay, initialiser, BN settings, data format).
        spec: unit kind, activation placement, shortcut kind and projection type.
        filters: width of the branch (the output has ``filters × expansion`` channels).
        stride: 2 in the first unit of a down-sampling stage, else 1.
        prefix: layer-name prefix, e.g. ``"stage2_unit1"``.
        first: the first unit after the stem (see ``Unit.first``).
    """
    placement = PLACEMENTS[spec.placement]
    unit = placement.bottleneck if spec.unit == "bottleneck" else placement.basic
    return unit(x, Unit(f, spec, filters, stride, prefix, first))
