"""One builder for every ResNet of both papers, the depth table, and the named factories.

The builder is ``stem -> stages of residual units -> head``. A network is fully described by its
family (``cifar``: 3×3 stem, 3 stages of width 16/32/64; ``imagenet``: 7×7/2 stem and max-pool,
4 stages of width 64/128/256/512), its depth, unit kind and activation placement; the depth table
turns the depth into units per stage.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import keras
from keras import layers

from keras_preact import preprocessing as _pre
from keras_preact import units as U
from keras_preact.weights import load_weights_file

FAMILIES = ("cifar", "imagenet")
VERSIONS = ("v1", "v2")
POOLINGS = (None, "avg", "max")

# Units per stage of the ImageNet networks (Table 1 of the v1 paper, ResNet-200 from the v2 paper).
IMAGENET_DEPTHS: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
STAGE_WIDTHS = {"cifar": (16, 32, 64), "imagenet": (64, 128, 256, 512)}
# CIFAR depth = (layers per unit) · 3 stages · n + 2: 6n+2 for basic units, 9n+2 for bottlenecks.
CIFAR_LAYERS_PER_UNIT = {"basic": 2, "bottleneck": 3}
MIN_INPUT_SIZE = {"cifar": 8, "imagenet": 32}
DEFAULT_INPUT_SIZE = {"cifar": 32, "imagenet": 224}
DEFAULT_CLASSES = {"cifar": 10, "imagenet": 1000}
# Frames Keras needs per layer on the longest path when it walks a functional graph recursively.
_RECURSION_HEADROOM = 2000


def units_per_stage(
    family: str, depth: int, unit: str | None = None
) -> tuple[str, tuple[int, ...]]:
    """Resolve ``(unit, units per stage)`` for a depth, raising ValueError for impossible ones.

    >>> units_per_stage("cifar", 164, "bottleneck")
    ('bottleneck', (18, 18, 18))
    """
    _check_choice("family", family, FAMILIES)
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"depth must be a positive integer, got {depth!r}")
    if family == "imagenet":
        if depth not in IMAGENET_DEPTHS:
            raise ValueError(
                f"ImageNet ResNets have depth 18, 34, 50, 101, 152 or 200, got {depth!r}"
            )
        table_unit, counts = IMAGENET_DEPTHS[depth]
        if unit is not None and unit != table_unit:
            raise ValueError(f"ImageNet ResNet-{depth} uses {table_unit} units, got unit={unit!r}")
        return table_unit, counts
    unit = unit or "basic"
    _check_choice("unit", unit, U.UNITS)
    per_unit = CIFAR_LAYERS_PER_UNIT[unit]
    n, rest = divmod(depth - 2, 3 * per_unit)
    if rest or n < 1:
        form = f"{3 * per_unit}n+2"
        valid = ", ".join(str(3 * per_unit * k + 2) for k in (1, 2, 3, 4, 5))
        raise ValueError(
            f"CIFAR ResNets with {unit} units have depth {form} ({valid}, ...), got {depth!r}"
        )
    return unit, (n, n, n)


def _check_choice(what: str, value: Any, allowed: Sequence[Any]) -> None:
    if value not in allowed:
        raise ValueError(
            f"unknown {what} {value!r}; expected one of {', '.join(map(repr, allowed))}"
        )


@contextmanager
def deep_graph_recursion(layers_deep: int = 20000) -> Iterator[None]:
    """Let Keras walk graphs of ``layers_deep`` layers (it recurses once per layer on a path).

    ResNet-1001 and ResNet-1202 have more than 3,000 layers on their longest path, past Python's
    default limit of 1,000 frames. The limit is raised only inside the ``with`` block.
    """
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, layers_deep + _RECURSION_HEADROOM))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def load_model(path: str | os.PathLike, **kwargs) -> keras.Model:
    """``keras.saving.load_model`` that also loads the deepest networks (ResNet-1001, -1202).

    Keyword arguments (``safe_mode``, ``compile``, ``custom_objects``) are passed through.
    """
    with deep_graph_recursion():
        return keras.saving.load_model(path, **kwargs)


@dataclasses.dataclass(frozen=True)
class _Head:
    include_top: bool
    pooling: str | None
    classes: int
    classifier_activation: Any


def _check_head(include_top: bool, pooling: str | None, classes: int, activation: Any) -> _Head:
    if not isinstance(include_top, bool):
        raise ValueError(f"include_top must be True or False, got {include_top!r}")
    _check_choice("pooling", pooling, POOLINGS)
    if include_top and pooling == "max":
        raise ValueError(
            "include_top=True uses the papers' global average pooling; got pooling='max' "
            "(use include_top=False with pooling='max', or pooling=None/'avg')"
        )
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise ValueError(f"classes must be an integer >= 1, got {classes!r}")
    if include_top and activation is not None:
        try:
            keras.activations.get(activation)
        except (ValueError, TypeError):
            raise ValueError(
                f"unknown classifier_activation {activation!r}; expected None, a Keras activation "
                "name such as 'softmax', or a callable"
            ) from None
    return _Head(include_top, pooling, classes, activation)


def _check_input_shape(input_shape: Any, family: str, data_format: str) -> tuple[int, int, int]:
    if input_shape is None:
        size = DEFAULT_INPUT_SIZE[family]
        return (size, size, 3) if data_format == "channels_last" else (3, size, size)
    shape = tuple(input_shape) if isinstance(input_shape, list | tuple) else None
    if (
        shape is None
        or len(shape) != 3
        or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0) for d in shape
        )
    ):
        raise ValueError(
            f"input_shape must be a tuple of 3 positive integers (height, width, channels), "
            f"got {input_shape!r}"
        )
    h, w, c = shape if data_format == "channels_last" else (shape[1], shape[2], shape[0])
    if c is None:
        raise ValueError(f"input_shape needs a known number of channels, got {input_shape!r}")
    low = MIN_INPUT_SIZE[family]
    if any(d is not None and d < low for d in (h, w)):
        raise ValueError(
            f"input_shape {input_shape!r} is too small: {family} ResNets need height and width "
            f">= {low}"
        )
    return shape


def _check_weights(weights: Any) -> str | None:
    if weights is None:
        return None
    if not isinstance(weights, str | os.PathLike):
        raise ValueError(
            f"weights must be None or the path of a local weights file, got {weights!r}"
        )
    path = os.fspath(weights)
    if path == "imagenet" or "://" in path:
        raise ValueError(
            f"weights={path!r}: keras-preact downloads nothing; pass None or the path of a "
            "local .weights.h5 or .keras file"
        )
    if not os.path.isfile(path):
        raise ValueError(f"weights file not found: {path!r}")
    return path


@dataclasses.dataclass(frozen=True)
class _Options:
    """Validated architecture options (everything except the head and the input)."""

    family: str
    version: str
    depth: int
    counts: tuple[int, ...]
    spec: U.UnitSpec
    factory: U.LayerFactory
    width_multiplier: int


def _resolve(
    family: str,
    version: str,
    depth: int,
    *,
    unit: str | None,
    placement: str | None,
    shortcut: str,
    projection: str | None,
    bottleneck_stride: str | None,
    shortcut_scale: float,
    gate_bias: float,
    shortcut_dropout: float,
    weight_decay: float,
    kernel_initializer: Any,
    bn_momentum: float,
    bn_epsilon: float,
    synchronized_bn: bool,
    width_multiplier: int,
) -> _Options:
    _check_choice("family", family, FAMILIES)
    _check_choice("version", version, VERSIONS)
    unit, counts = units_per_stage(family, depth, unit)
    placement = placement or ("original" if version == "v1" else "full_preact")
    _check_choice("placement", placement, U.PLACEMENTS)
    _check_choice("shortcut", shortcut, U.SHORTCUTS)
    # The v1 CIFAR networks use parameter-free option A; everything else projects where needed.
    projection = projection or ("A" if (family, version) == ("cifar", "v1") else "B")
    _check_choice("projection", projection, U.PROJECTIONS)
    # v1: stride on the first 1×1 as in the released v1 models (and its FLOPs table);
    # v2: stride on the 3×3, as in the v2 paper's code.
    bottleneck_stride = bottleneck_stride or ("1x1" if version == "v1" else "3x3")
    _check_choice("bottleneck_stride", bottleneck_stride, U.BOTTLENECK_STRIDES)
    for what, value, lo, hi in (
        ("shortcut_scale", shortcut_scale, 0.0, 1.0),
        ("shortcut_dropout", shortcut_dropout, 0.0, 1.0),
        ("bn_momentum", bn_momentum, 0.0, 1.0),
    ):
        if not isinstance(value, int | float) or not lo <= value < hi:
            raise ValueError(f"{what} must be a number in [{lo}, {hi}), got {value!r}")
    if not isinstance(gate_bias, int | float):
        raise ValueError(f"gate_bias must be a number, got {gate_bias!r}")
    if not isinstance(weight_decay, int | float) or weight_decay < 0:
        raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay!r}")
    if not isinstance(bn_epsilon, int | float) or bn_epsilon <= 0:
        raise ValueError(f"bn_epsilon must be a number > 0, got {bn_epsilon!r}")
    if not isinstance(synchronized_bn, bool):
        raise ValueError(f"synchronized_bn must be True or False, got {synchronized_bn!r}")
    if (
        not isinstance(width_multiplier, int)
        or isinstance(width_multiplier, bool)
        or width_multiplier < 1
    ):
        raise ValueError(f"width_multiplier must be an integer >= 1, got {width_multiplier!r}")
    if kernel_initializer != "he_normal_fan_out":
        try:
            keras.initializers.get(kernel_initializer)
        except (ValueError, TypeError):
            raise ValueError(f"unknown kernel_initializer {kernel_initializer!r}") from None
    spec = U.UnitSpec(
        unit=unit,
        placement=placement,
        shortcut=shortcut,
        projection=projection,
        bottleneck_stride=bottleneck_stride,
        shortcut_scale=float(shortcut_scale),
        gate_bias=float(gate_bias),
        shortcut_dropout=float(shortcut_dropout),
    )
    factory = U.LayerFactory(
        weight_decay=float(weight_decay),
        kernel_initializer=kernel_initializer,
        bn_momentum=float(bn_momentum),
        bn_epsilon=float(bn_epsilon),
        synchronized_bn=synchronized_bn,
        data_format=keras.config.image_data_format(),
    )
    return _Options(family, version, depth, counts, spec, factory, width_multiplier)


def _stem(x, o: _Options):
    """The first convolution (and, for ImageNet, max-pool) with the activation its units expect."""
    f, placement = o.factory, o.spec.placement
    width = STAGE_WIDTHS[o.family][0] * o.width_multiplier
    if o.family == "cifar":
        x = f.conv(width, 3, 1, "stem_conv")(x)
    else:
        x = layers.ZeroPadding2D(3, data_format=f.data_format, name="stem_conv_pad")(x)
        x = f.conv(width, 7, 2, "stem_conv", padding="valid")(x)
    # Pre-activation units bring their own BN/ReLU (v2: the first unit's is the stem's).
    if placement != "full_preact":
        x = f.bn("stem_bn")(x)
    if placement not in U.PREACT_PLACEMENTS:
        x = f.relu("stem_relu")(x)
    if o.family == "imagenet":
        x = layers.ZeroPadding2D(1, data_format=f.data_format, name="stem_pool_pad")(x)
        x = layers.MaxPooling2D(3, 2, data_format=f.data_format, name="stem_pool")(x)
    return x


def _head(x, o: _Options, head: _Head):
    """Final activation of pre-activation nets, then pooling and the classifier."""
    f = o.factory
    if o.spec.placement == "full_preact":  # v2: BN-ReLU after the last unit (the sum is raw).
        x = f.bn("post_bn")(x)
    if o.spec.placement in U.PREACT_PLACEMENTS:
        x = f.relu("post_relu")(x)
    if head.include_top or head.pooling == "avg":
        x = layers.GlobalAveragePooling2D(data_format=f.data_format, name="avg_pool")(x)
    elif head.pooling == "max":
        x = layers.GlobalMaxPooling2D(data_format=f.data_format, name="max_pool")(x)
    if head.include_top:
        x = layers.Dense(
            head.classes,
            kernel_regularizer=f.regularizer(),
            name="logits",
        )(x)
        # Softmax in float32 so that mixed-precision models still output float32 probabilities.
        x = layers.Activation(head.classifier_activation, dtype="float32", name="predictions")(x)
    return x


def build_resnet(
    family: str,
    version: str,
    depth: int,
    *,
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    preprocessing: str | None = None,
    unit: str | None = None,
    placement: str | None = None,
    shortcut: str = "identity",
    projection: str | None = None,
    bottleneck_stride: str | None = None,
    shortcut_scale: float = 0.5,
    gate_bias: float = -6.0,
    shortcut_dropout: float = 0.5,
    weight_decay: float = 0.0,
    kernel_initializer: Any = "he_normal_fan_out",
    bn_momentum: float = 0.9,
    bn_epsilon: float = 1e-5,
    synchronized_bn: bool = False,
    width_multiplier: int = 1,
) -> keras.Model:
    """Build any ResNet of the two papers (the generic entry point behind every factory).

    See ``RESNET_DOC`` (the factories' docstring) for the meaning of each argument.
    """
    o = _resolve(
        family,
        version,
        depth,
        unit=unit,
        placement=placement,
        shortcut=shortcut,
        projection=projection,
        bottleneck_stride=bottleneck_stride,
        shortcut_scale=shortcut_scale,
        gate_bias=gate_bias,
        shortcut_dropout=shortcut_dropout,
        weight_decay=weight_decay,
        kernel_initializer=kernel_initializer,
        bn_momentum=bn_momentum,
        bn_epsilon=bn_epsilon,
        synchronized_bn=synchronized_bn,
        width_multiplier=width_multiplier,
    )
    head = _check_head(
        include_top,
        pooling,
        DEFAULT_CLASSES[family] if classes is None else classes,
        classifier_activation,
    )
    weights_path = _check_weights(weights)
    _check_choice("preprocessing", preprocessing, (None, *_pre.DATASET_STATS))
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    data_format = o.factory.data_format
    if input_tensor is not None:
        if not keras.utils.is_keras_tensor(input_tensor):
            raise ValueError(
                f"input_tensor must be a Keras tensor (keras.Input), got {input_tensor!r}"
            )
        shape = _check_input_shape(tuple(input_tensor.shape[1:]), family, data_format)
        inputs = input_tensor
    else:
        shape = _check_input_shape(input_shape, family, data_format)
        inputs = keras.Input(shape=shape, name="image")

    with deep_graph_recursion(_longest_path(o)):
        x = inputs
        if preprocessing is not None:
            x = _pre.normalization_layer(preprocessing, data_format)(x)
        x = _stem(x, o)
        widths = STAGE_WIDTHS[o.family]
        for s, (count, width) in enumerate(zip(o.counts, widths, strict=True), start=1):
            for u in range(1, count + 1):
                x = U.residual_unit(
                    x,
                    o.factory,
                    o.spec,
                    filters=width * o.width_multiplier,
                    # CIFAR's first stage keeps 32×32; ImageNet's follows the max-pool.
                    stride=2 if (u == 1 and s > 1) else 1,
                    prefix=f"stage{s}_unit{u}",
                    first=(s == 1 and u == 1),
                )
        x = _head(x, o, head)
        model = keras.Model(inputs, x, name=name or _default_name(o))
    if weights_path is not None:
        load_weights_file(model, weights_path)
    return model


def _longest_path(o: _Options) -> int:
    return sum(o.counts) * 12 + 32


def _default_name(o: _Options) -> str:
    return f"resnet{o.depth}{o.version}" + ("" if o.family == "cifar" else "_imagenet")


# ---------------------------------------------------------------------------------------------
# Named factories: one table, one docstring, three lines each.

RESNET_DOC = """Instantiate {title}.

{paper}

Args:
    include_top: whether to include the global average pooling and the classifier.
    weights: ``None`` (random He initialisation) or the path of a local ``.weights.h5`` or
        ``.keras`` file for this architecture; nothing is ever downloaded.
    input_tensor: optional Keras tensor (output of ``keras.Input``) to use as the model's input.
    input_shape: ``(height, width, channels)``; defaults to {default_shape}. Height and width
        must be at least {min_size}.
    pooling: with ``include_top=False``: ``None`` (4-D feature map), ``"avg"`` or ``"max"``.
    classes: number of classes (default {default_classes}).
    classifier_activation: activation of the ``predictions`` layer (``None`` returns logits);
        always computed in float32, also under a mixed-precision policy.
    name: model name (default ``{model_name}``).
    weight_decay: the papers' SGD weight decay (they use 1e-4), added as an L2 penalty of
        ``weight_decay / 2`` on every kernel so that its gradient is ``weight_decay · W``.
    preprocessing: ``None`` (inputs already standardised) or ``"cifar10"``, ``"cifar100"``,
        ``"imagenet"``: a first ``Normalization`` layer named ``preprocess`` standardises raw
        [0, 255] pixels with that dataset's per-channel mean and standard deviation.
    **options: architecture options of ``keras_preact.ResNet`` — ``placement``, ``shortcut``,
        ``projection``, ``bottleneck_stride``, ``shortcut_scale``, ``gate_bias``,
        ``shortcut_dropout``, ``kernel_initializer``, ``bn_momentum``, ``bn_epsilon``,
        ``synchronized_bn``, ``width_multiplier``.

Returns:
    A functional ``keras.Model`` whose layers are named ``stem_conv``, ``stage2_unit3_conv1``,
    ``stage2_unit3_add``, ``post_bn``, ``logits``, ``predictions``, ...
"""

_PAPERS = {
    "v1": 'From "Deep Residual Learning for Image Recognition" (He et al., 2015): post-activation\n'
    "units (conv-BN-ReLU, ReLU after the addition).",
    "v2": 'From "Identity Mappings in Deep Residual Networks" (He et al., 2016): full pre-activation\n'
    "units (BN-ReLU-conv, nothing after the addition).",
}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """One row of the model table: what a named factory builds and what the paper reports."""

    name: str
    family: str
    version: str
    depth: int
    unit: str
    paper_params_m: float | None = None
    paper_cifar10_error: float | None = None
    paper_gmacs: float | None = None


MODELS: dict[str, ModelInfo] = {
    info.name.lower(): info
    for info in (
        ModelInfo("ResNet20V1", "cifar", "v1", 20, "basic", 0.27, 8.75),
        ModelInfo("ResNet32V1", "cifar", "v1", 32, "basic", 0.46, 7.51),
        ModelInfo("ResNet44V1", "cifar", "v1", 44, "basic", 0.66, 7.17),
        ModelInfo("ResNet56V1", "cifar", "v1", 56, "basic", 0.85, 6.97),
        ModelInfo("ResNet110V1", "cifar", "v1", 110, "basic", 1.7, 6.43),
        ModelInfo("ResNet1202V1", "cifar", "v1", 1202, "basic", 19.4, 7.93),
        ModelInfo("ResNet110V2", "cifar", "v2", 110, "basic", 1.7, 6.37),
        ModelInfo("ResNet164V2", "cifar", "v2", 164, "bottleneck", 1.7, 5.46),
        ModelInfo("ResNet1001V2", "cifar", "v2", 1001, "bottleneck", 10.2, 4.92),
        *(
            ModelInfo(
                f"ResNet{d}V{v}",
                "imagenet",
                f"v{v}",
                d,
                IMAGENET_DEPTHS[d][0],
                None,
                None,
                {18: 1.8, 34: 3.6, 50: 3.8, 101: 7.6, 152: 11.3}.get(d) if v == 1 else None,
            )
            for v in (1, 2)
            for d in IMAGENET_DEPTHS
        ),
    )
}
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)


def _factory(info: ModelInfo) -> Callable[..., keras.Model]:
    def factory(
        include_top: bool = True,
        weights: str | os.PathLike | None = None,
        input_tensor: Any = None,
        input_shape: Sequence[int | None] | None = None,
        pooling: str | None = None,
        classes: int | None = None,
        classifier_activation: Any = "softmax",
        name: str | None = None,
        **options: Any,
    ) -> keras.Model:
        for fixed in ("family", "version", "depth", "unit"):
            if fixed in options:
                raise ValueError(f"{info.name} fixes {fixed}; use keras_preact.ResNet to choose it")
        return build_resnet(
            info.family,
            info.version,
            info.depth,
            unit=info.unit,
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            name=info.name.lower() if name is None else name,
            **options,
        )

    size = DEFAULT_INPUT_SIZE[info.family]
    factory.__name__ = factory.__qualname__ = info.name
    factory.__doc__ = RESNET_DOC.format(
        title=f"ResNet-{info.depth} {info.version} ({info.family.upper() if info.family == 'cifar' else 'ImageNet'}, {info.unit} units)",
        paper=_PAPERS[info.version],
        default_shape=f"({size}, {size}, 3)",
        min_size=MIN_INPUT_SIZE[info.family],
        default_classes=DEFAULT_CLASSES[info.family],
        model_name=info.name.lower(),
    )
    return factory


FACTORIES: dict[str, Callable[..., keras.Model]] = {
    key: _factory(info) for key, info in MODELS.items()
}


def get_model(name: str, **kwargs: Any) -> keras.Model:
    """Build a named model, e.g. ``get_model("resnet164v2", classes=100)`` (case-insensitive)."""
    key = name.lower() if isinstance(name, str) else None
    if key not in FACTORIES:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")
    return FACTORIES[key](**kwargs)


def ResNet(
    depth: int,
    version: str = "v2",
    family: str = "cifar",
    unit: str | None = None,
    **kwargs: Any,
) -> keras.Model:
    """Build a ResNet of any valid depth: CIFAR 6n+2 (basic) / 9n+2 (bottleneck), ImageNet 18…200.

    ``unit`` defaults to basic for CIFAR; ImageNet depths fix it. Every other argument is that of
    the named factories (``help(keras_preact.ResNet164V2)``), plus the architecture options:
    ``placement`` (one of ``units.PLACEMENTS``; default ``original`` for v1, ``full_preact`` for
    v2), ``shortcut`` (``units.SHORTCUTS``), ``projection`` (``"A"``, ``"B"``, ``"C"``),
    ``bottleneck_stride`` (``"1x1"``/``"3x3"``), ``shortcut_scale`` (λ of constant scaling),
    ``gate_bias`` (initial b_g of the gates), ``shortcut_dropout``, ``kernel_initializer``,
    ``bn_momentum``, ``bn_epsilon``, ``synchronized_bn``, ``width_multiplier``.

    Example: the v2 paper's Table 1 "exclusive gating" row on ResNet-110::

        keras_preact.ResNet(110, version="v1", shortcut="exclusive_gating", gate_bias=-6)
    """
    return build_resnet(family, version, depth, unit=unit, **kwargs)
