"""Residual units of both papers, in one place.

A unit is ``out = post(shortcut(x) ⊕ F(x))``. What varies, and the names used for it:

* ``unit``: ``"basic"`` (two 3×3 convs) or ``"bottleneck"`` (1×1, 3×3, 1×1 with 4× expansion).
* ``placement``: where BN and ReLU sit (Fig. 4 of "Identity Mappings in Deep Residual Networks"):

  ============== ===================================== ==================
  placement      residual branch F                     after the addition
  ============== ===================================== ==================
  original       conv-BN-ReLU … conv-BN  (v1 paper)    ReLU
  bn_after_add   conv-BN-ReLU … conv                   BN, ReLU
  relu_before_add conv-BN-ReLU … conv-BN-ReLU          nothing
  relu_preact    ReLU-conv-BN … ReLU-conv-BN           nothing
  full_preact    BN-ReLU-conv … BN-ReLU-conv (v2)      nothing
  ============== ===================================== ==================

* ``shortcut``: how the identity path is treated (Fig. 2 / Table 1 of the v2 paper): ``identity``,
  ``scaling`` (λ·x, and F scaled by 1−λ), ``exclusive_gating`` ((1−g)·x + g·F),
  ``shortcut_gating`` ((1−g)·x + F), ``conv`` (1×1 conv on every shortcut), ``dropout`` (dropout
  on x, kept at expectation 1−p as in the paper).
* ``projection``: what an identity shortcut does where the shape changes: ``"A"`` zero-padded
  channels and strided subsampling (the v1 CIFAR nets), ``"B"`` a 1×1 projection there only,
  ``"C"`` a 1×1 projection on every unit.

Layer names are ``{prefix}_{role}``, e.g. ``stage2_unit3_conv1``, ``stage2_unit3_bn1``,
``stage2_unit3_shortcut_conv``, ``stage2_unit3_add``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
from keras import layers

from keras_preact.layers import BatchNormalization, ShortcutPad

UNITS = ("basic", "bottleneck")
PLACEMENTS = ("original", "bn_after_add", "relu_before_add", "relu_preact", "full_preact")
SHORTCUTS = (
    "identity",
    "scaling",
    "exclusive_gating",
    "shortcut_gating",
    "conv",
    "dropout",
)
PROJECTIONS = ("A", "B", "C")
BOTTLENECK_STRIDES = ("1x1", "3x3")
PREACT_PLACEMENTS = ("relu_preact", "full_preact")
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

    def _initializer(self):
        if self.kernel_initializer == "he_normal_fan_out":
            # He et al. initialise with N(0, 2 / (k·k·c_out)), i.e. fan-out, not Keras' fan-in.
            return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")
        return keras.initializers.get(self.kernel_initializer)

    def regularizer(self):
        """The L2 kernel regularizer for the configured weight decay, or None."""
        return keras.regularizers.L2(self.weight_decay / 2) if self.weight_decay else None

    def conv(self, filters: int, kernel: int, stride: int, name: str, **kwargs) -> layers.Conv2D:
        """A bias-free He-initialised convolution (``same`` padding unless given)."""
        return layers.Conv2D(
            filters,
            kernel,
            strides=stride,
            padding=kwargs.pop("padding", "same"),
            use_bias=kwargs.pop("use_bias", False),
            kernel_initializer=self._initializer(),
            kernel_regularizer=self.regularizer(),
            data_format=self.data_format,
            name=name,
            **kwargs,
        )

    def bn(self, name: str) -> BatchNormalization:
        """Batch normalisation with the papers' (Torch) momentum and epsilon."""
        return BatchNormalization(
            axis=self.channel_axis,
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            synchronized=self.synchronized_bn,
            name=name,
        )

    def relu(self, name: str) -> layers.ReLU:
        """ReLU."""
        return layers.ReLU(name=name)


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

    @property
    def preact(self) -> bool:
        """True when the unit starts with its activation (the v2 family)."""
        return self.placement in PREACT_PLACEMENTS


def _branch_layout(spec: UnitSpec, filters: int, stride: int) -> list[tuple[int, int, int]]:
    """(kernel, filters, stride) of each convolution of the residual branch."""
    if spec.unit == "basic":
        return [(3, filters, stride), (3, filters, 1)]
    s1, s3 = (stride, 1) if spec.bottleneck_stride == "1x1" else (1, stride)
    return [(1, filters, s1), (3, filters, s3), (1, filters * EXPANSION["bottleneck"], 1)]


def _activation(f: LayerFactory, spec: UnitSpec, x, prefix: str, i: int):
    """The pre-activation of conv ``i`` (BN-ReLU, or ReLU only)."""
    if spec.placement == "full_preact":
        x = f.bn(f"{prefix}_bn{i}")(x)
    return f.relu(f"{prefix}_relu{i}")(x)


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
    out_channels = filters * EXPANSION[spec.unit]
    in_channels = x.shape[f.channel_axis]
    reshape = stride != 1 or in_channels != out_channels
    project = (
        spec.shortcut == "conv" or spec.projection == "C" or (reshape and spec.projection == "B")
    )

    # Pre-activation: the first activation is shared by both paths when the shortcut is a
    # projection (it needs normalised input) or the unit follows the stem (v2 paper, appendix).
    branch_in = x
    if spec.preact:
        branch_in = _activation(f, spec, x, prefix, 1)
    shortcut_in = branch_in if spec.preact and (project or first) else x

    # Residual branch F.
    y = branch_in
    layout = _branch_layout(spec, filters, stride)
    for i, (kernel, width, s) in enumerate(layout, start=1):
        last = i == len(layout)
        if spec.preact and i > 1:
            y = _activation(f, spec, y, prefix, i)
        y = f.conv(width, kernel, s, f"{prefix}_conv{i}")(y)
        if spec.placement == "relu_preact" or (
            not spec.preact and not (last and spec.placement == "bn_after_add")
        ):
            y = f.bn(f"{prefix}_bn{i}")(y)
        if not spec.preact and (not last or spec.placement == "relu_before_add"):
            y = f.relu(f"{prefix}_relu{i}")(y)

    # Shortcut path.
    s = shortcut_in
    if project:
        s = f.conv(out_channels, 1, stride, f"{prefix}_shortcut_conv")(s)
        if not spec.preact:
            s = f.bn(f"{prefix}_shortcut_bn")(s)
    elif reshape:  # projection "A"
        s = ShortcutPad(stride, out_channels, f.data_format, name=f"{prefix}_shortcut_pad")(s)
    s, y = _modulate(x, s, y, f, spec, out_channels, stride, prefix)

    out = layers.Add(name=f"{prefix}_add")([s, y])
    if spec.placement == "bn_after_add":
        out = f.bn(f"{prefix}_out_bn")(out)
    if spec.placement in ("original", "bn_after_add"):
        out = f.relu(f"{prefix}_out_relu")(out)
    return out


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
            out_channels,
            1,
            stride,
            f"{prefix}_gate_conv",
            use_bias=True,
            bias_initializer=keras.initializers.Constant(spec.gate_bias),
            activation="sigmoid",
        )(x)
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
