"""Residual units of both papers, in one place.

A unit is ``out = after_add(shortcut(x) + F(x))``. The v1 unit and the v2 unit, as the papers draw
them (basic units; a bottleneck has three convolutions, 1×1, 3×3, 1×1 with 4× expansion)::

    v1 ("original"):     x ─┬─ conv-BN-ReLU ─ conv-BN ─(+)─ ReLU ─▶
                            └──────────── identity ────┘
    v2 ("full_preact"):  x ─┬─ BN-ReLU-conv ─ BN-ReLU-conv ─(+)─▶
                            └──────────── identity ─────────┘

The v2 paper's Fig. 4 compares five such *placements* of BN and ReLU; each is one row of
``PLACEMENTS``, written exactly as the figure draws it: what each convolution of the residual branch
is wrapped in, what the last one is wrapped in, and what follows the addition.

The other choices, and the names used for them:

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
from typing import Any

import keras
import numpy as np
from keras import layers

UNITS = ("basic", "bottleneck")

# placement:        (each conv but the last, the last conv,   after the addition)
PLACEMENTS: dict[str, tuple[str, str, str]] = {
    "original": ("conv-bn-relu", "conv-bn", "relu"),  # v1 paper
    "bn_after_add": ("conv-bn-relu", "conv", "bn-relu"),
    "relu_before_add": ("conv-bn-relu", "conv-bn-relu", ""),
    "relu_preact": ("relu-conv-bn", "relu-conv-bn", ""),
    "full_preact": ("bn-relu-conv", "bn-relu-conv", ""),  # v2 paper
}
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


def is_preact(placement: str) -> bool:
    """Whether a placement activates before its convolutions (the v2 family)."""
    return not PLACEMENTS[placement][0].startswith("conv")


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
        first: the first unit after the stem. In pre-activation networks it shares the stem's
            activation: its shortcut starts from the activated input, as in the v2 paper's appendix.
    """
    wrap, wrap_last, after_add = PLACEMENTS[spec.placement]
    convs = spec.branch(filters, stride)
    out_channels = convs[-1][1]
    project = _projects(x, f, spec, out_channels, stride)

    # Residual branch F. In pre-activation units the activation before the first convolution is
    # shared with the shortcut when that is a projection (it needs normalised input) or the unit
    # follows the stem.
    pre, _, rest = wrap.partition("conv")
    x_act = _chain(f, x, pre, lambda op: f"{prefix}_{op}1")
    shortcut_in = x_act if pre and (project or first) else x
    y = _chain(f, x_act, "conv" + rest, lambda op: f"{prefix}_{op}1", convs[0])
    for i, conv in enumerate(convs[1:], start=2):
        ops = wrap_last if i == len(convs) else wrap
        y = _chain(f, y, ops, lambda op, i=i: f"{prefix}_{op}{i}", conv)

    if spec.shortcut == "none":  # a plain network: no shortcut, no addition
        return _chain(f, y, after_add, lambda op: f"{prefix}_out_{op}")
    s = _shortcut(x, shortcut_in, f, spec, out_channels, stride, prefix, project)
    s, y = _modulate(x, s, y, f, spec, out_channels, stride, prefix)
    out = layers.Add(name=f"{prefix}_add")([s, y])
    return _chain(f, out, after_add, lambda op: f"{prefix}_out_{op}")


def _chain(f: LayerFactory, y, ops: str, name, conv: tuple[int, int, int] | None = None):
    """Apply ``ops`` (e.g. ``"bn-relu-conv"``) in order; ``name(op)`` names each layer."""
    for op in filter(None, ops.split("-")):
        if op == "conv":
            kernel, width, stride = conv
            y = f.conv(y, width, kernel, stride, name("conv"))
        elif op == "bn":
            y = f.bn(y, name("bn"))
        else:
            y = f.relu(y, name("relu"))
    return y


def _projects(x, f: LayerFactory, spec: UnitSpec, out_channels: int, stride: int) -> bool:
    """Whether the shortcut is a 1×1 convolution (projection B where the shape changes, or C)."""
    reshape = stride != 1 or x.shape[f.channel_axis] != out_channels
    return spec.shortcut == "conv" or spec.projection == "C" or (reshape and spec.projection == "B")


def _shortcut(x, s, f: LayerFactory, spec: UnitSpec, out_channels, stride, prefix, project):
    """The shortcut path before any ablation: identity, option A, or a 1×1 projection."""
    if project:
        s = f.conv(s, out_channels, 1, stride, f"{prefix}_shortcut_conv")
        if not is_preact(spec.placement):
            s = f.bn(s, f"{prefix}_shortcut_bn")
    elif stride != 1 or x.shape[f.channel_axis] != out_channels:  # projection "A"
        s = f.subsample_and_pad_channels(s, stride, out_channels, f"{prefix}_shortcut_pad")
    return s


def _modulate(x, s, y, f: LayerFactory, spec: UnitSpec, out_channels: int, stride: int, prefix):
    """The v2 paper's shortcut ablations (Fig. 2): return the modified (shortcut, branch)."""
    kind = spec.shortcut
    if kind == "scaling":
        lam = spec.shortcut_scale
        s = layers.Rescaling(lam, name=f"{prefix}_shortcut_scale")(s)
        y = layers.Rescaling(1.0 - lam, name=f"{prefix}_residual_scale")(y)
    elif kind in ("exclusive_gating", "shortcut_gating"):
        # g(x) = sigmoid(W_g x + b_g), a 1×1 conv on the unit's input; b_g < 0 starts near identity.
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
        if kind == "exclusive_gating":
            y = layers.Multiply(name=f"{prefix}_residual_gate")([gate, y])
    elif kind == "dropout":
        # Keras' dropout rescales kept values by 1/(1-p); the paper's does not, so that the
        # shortcut is λ = 1-p in expectation. Scale back to match.
        p = spec.shortcut_dropout
        s = layers.Dropout(p, name=f"{prefix}_shortcut_dropout")(s)
        s = layers.Rescaling(1.0 - p, name=f"{prefix}_shortcut_keep")(s)
    return s, y
