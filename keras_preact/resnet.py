"""One builder for every ResNet of both papers, and the named models ready to build.

The builder is ``stem -> stages of residual units -> head``. A network is fully described by its
family (``cifar``: 3×3 stem, 3 stages of width 16/32/64; ``imagenet``: 7×7/2 stem and max-pool,
4 stages of width 64/128/256/512), its depth, unit kind and activation placement; the depth table
(``keras_preact.catalogue``, also offered here) turns the depth into units per stage.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypedDict

import keras
from keras import layers

from keras_preact import features as features_lib
from keras_preact import preprocessing as preprocessing_lib
from keras_preact import units
from keras_preact import weights as weights_lib
from keras_preact.catalogue import CIFAR_LAYERS_PER_UNIT as CIFAR_LAYERS_PER_UNIT
from keras_preact.catalogue import (
    DEFAULT_CLASSES,
    DEFAULT_INPUT_SIZE,
    FAMILIES,
    MIN_INPUT_SIZE,
    NETWORKS,
    STAGE_WIDTHS,
    VERSIONS,
    NamedNetwork,
    check_choice,
    default_options,
    resolve_network,
    units_per_stage,
)
from keras_preact.catalogue import IMAGENET_DEPTHS as IMAGENET_DEPTHS
from keras_preact.catalogue import MODEL_NAMES as MODEL_NAMES
from keras_preact.fused_batch_norm import use_fused_batch_norm
from keras_preact.saving import deep_graph_recursion, prepare_weights

if TYPE_CHECKING:
    from typing_extensions import Unpack

POOLINGS = (None, "avg", "max")


@dataclasses.dataclass(frozen=True)
class _Head:
    include_top: bool
    pooling: str | None
    classes: int
    classifier_activation: Any


def _check_head(include_top: bool, pooling: str | None, classes: int, activation: Any) -> _Head:
    if not isinstance(include_top, bool):
        raise ValueError(f"include_top must be True or False, got {include_top!r}")
    check_choice("pooling", pooling, POOLINGS)
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


AUTO = "auto"
"""``preprocessing="auto"``: what named weights were trained with, else none."""


def _check_preprocessing(preprocessing: str | None, channels: int) -> None:
    check_choice("preprocessing", preprocessing, (None, *preprocessing_lib.DATASET_STATS))
    if preprocessing is not None and channels != 3:
        raise ValueError(
            f"preprocessing={preprocessing!r} standardises 3 (RGB) channels, but the input has "
            f"{channels}; use preprocessing=None for {channels}-channel input"
        )


def _check_weights(weights: Any) -> str | None:
    """``weights`` as a path or a name of published weights (``keras_preact.list_weights``)."""
    if weights is None:
        return None
    if not isinstance(weights, str | os.PathLike):
        raise ValueError(
            "weights must be None, a name of published weights ('imagenet', 'cifar10', "
            f"'cifar100', 'torchvision:IMAGENET1K_V1', ...) or the path of a local weights file, "
            f"got {weights!r}"
        )
    if weights_lib.is_named(weights):
        return os.fspath(weights)
    path = os.fspath(weights)
    if "://" in path:
        raise ValueError(
            f"weights={path!r}: keras-preact fetches only the published weights it names "
            "(keras_preact.list_weights(); e.g. weights='imagenet'); pass such a name, or the "
            "path of a local .weights.h5 or .keras file or of a checkpoint to convert "
            "(torchvision or PyTorch CIFAR .pth, timm .safetensors, keras.applications .h5)"
        )
    if os.path.isdir(path):
        raise ValueError(f"weights={path!r} is a directory, not a weights file")
    if os.path.exists(path) and not os.path.isfile(path):
        raise ValueError(f"weights={path!r} is not a regular file (a device, pipe or socket)")
    if not os.path.isfile(path):
        raise ValueError(f"weights file not found: {path!r}")
    return path


def _check_number(what: str, value: Any, low: float, high: float, *, closed: bool = False) -> float:
    """``value`` as a float, if it is a finite number in ``[low, high)`` (``[low, high]`` if closed)."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    inside = (
        number
        and math.isfinite(value)
        and low <= value
        and (value <= high if closed else value < high)
    )
    if not inside:
        bracket = "]" if closed else ")"
        raise ValueError(
            f"{what} must be a finite number in [{low}, {high}{bracket}, got {value!r}"
        )
    return float(value)


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A validated network: everything but the head and the input (see ``ResNet``)."""

    family: str
    version: str
    depth: int
    counts: tuple[int, ...]
    spec: units.UnitSpec
    layers: units.LayerFactory
    width_multiplier: int

    @property
    def widths(self) -> tuple[int, ...]:
        """Branch width of each stage."""
        return tuple(w * self.width_multiplier for w in STAGE_WIDTHS[self.family])

    @property
    def longest_path(self) -> int:
        """An upper bound on the layers along the graph's longest path."""
        return sum(self.counts) * 12 + 32

    @property
    def default_name(self) -> str:
        """``resnet20v1``, ``plain56v1``, ``resnet50v2_imagenet``, ..."""
        kind = "plain" if self.spec.shortcut == "none" else "resnet"
        return f"{kind}{self.depth}{self.version}" + ("" if self.family == "cifar" else "_imagenet")


def architecture(
    depth: int,
    version: str = "v2",
    family: str = "cifar",
    unit: str | None = None,
    *,
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
) -> Architecture:
    """Validate the architecture options of ``ResNet`` (raising ValueError) without building."""
    check_choice("family", family, FAMILIES)
    check_choice("version", version, VERSIONS)
    unit, counts = units_per_stage(family, depth, unit)
    defaults = default_options(family, version)
    placement = placement or defaults["placement"]
    check_choice("placement", placement, tuple(units.PLACEMENTS))
    check_choice("shortcut", shortcut, units.SHORTCUTS)
    projection = projection or defaults["projection"]
    check_choice("projection", projection, units.PROJECTIONS)
    bottleneck_stride = bottleneck_stride or defaults["bottleneck_stride"]
    check_choice("bottleneck_stride", bottleneck_stride, units.BOTTLENECK_STRIDES)
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
    spec = units.UnitSpec(
        unit=unit,
        placement=placement,
        shortcut=shortcut,
        projection=projection,
        bottleneck_stride=bottleneck_stride,
        shortcut_scale=_check_number("shortcut_scale", shortcut_scale, 0.0, 1.0),
        gate_bias=_check_number("gate_bias", gate_bias, -math.inf, math.inf),
        shortcut_dropout=_check_number("shortcut_dropout", shortcut_dropout, 0.0, 1.0),
    )
    factory = units.LayerFactory(
        weight_decay=_check_number("weight_decay", weight_decay, 0.0, 1.0, closed=True),
        kernel_initializer=kernel_initializer,
        bn_momentum=_check_number("bn_momentum", bn_momentum, 0.0, 1.0),
        bn_epsilon=_check_number("bn_epsilon", bn_epsilon, 1e-12, 1.0),
        synchronized_bn=synchronized_bn,
        data_format=keras.config.image_data_format(),
    )
    return Architecture(family, version, depth, counts, spec, factory, width_multiplier)


class ArchitectureOptions(TypedDict, total=False):
    """The architecture options of ``ResNet`` (keyword arguments of ``architecture``)."""

    placement: str | None
    shortcut: str
    projection: str | None
    bottleneck_stride: str | None
    shortcut_scale: float
    gate_bias: float
    shortcut_dropout: float
    weight_decay: float
    kernel_initializer: Any
    bn_momentum: float
    bn_epsilon: float
    synchronized_bn: bool
    width_multiplier: int


class ModelOptions(ArchitectureOptions, total=False):
    """The keyword arguments of the named factories beyond keras.applications' own."""

    preprocessing: str | None
    features: str | Sequence[str] | None


class ModelArguments(ModelOptions, total=False):
    """The keyword arguments of ``get_model``: those of the named factories but ``name`` (the
    model's), and ``unit``."""

    include_top: bool
    weights: str | os.PathLike | None
    input_tensor: Any
    input_shape: Sequence[int | None] | None
    pooling: str | None
    classes: int | None
    classifier_activation: Any
    unit: str | None


def _stem(x, arch: Architecture):
    """The first convolution (and, for ImageNet, the max-pool) with the activation units expect.

    Post-activation units expect an activated input: conv-BN-ReLU. Pre-activation units bring
    their own (v2: the first unit's BN-ReLU is the stem's), so their stem ends before it
    (``units.Placement``). The ImageNet max-pool (3×3, stride 2, one pixel of padding that never
    wins, as in the references) is a stride-1 'same' pool sampled at every second pixel: 'same'
    pooling ignores the padding, so negative inputs (a bare pre-activation stem) pool correctly.
    """
    f, placement = arch.layers, units.PLACEMENTS[arch.spec.placement]
    width = arch.widths[0]
    if arch.family == "cifar":
        x = f.conv(x, width, 3, 1, "stem_conv")
    else:
        x = f.conv(x, width, 7, 2, "stem_conv")
    if placement.stem_bn:
        x = f.bn(x, "stem_bn")
    if placement.stem_relu:
        x = f.relu(x, "stem_relu")
    if arch.family == "imagenet":
        x = layers.MaxPooling2D(
            3, strides=1, padding="same", data_format=f.data_format, name="stem_pool"
        )(x)
        x = layers.MaxPooling2D(1, strides=2, data_format=f.data_format, name="stem_pool_stride")(x)
    return x


def _head(x, arch: Architecture, head: _Head):
    """Final activation of pre-activation nets (v2: BN-ReLU, the last sum is raw), then pooling
    and the classifier."""
    f, placement = arch.layers, units.PLACEMENTS[arch.spec.placement]
    if placement.post_bn:
        x = f.bn(x, "post_bn")
    if placement.post_relu:
        x = f.relu(x, "post_relu")
    if head.include_top or head.pooling == "avg":
        x = layers.GlobalAveragePooling2D(data_format=f.data_format, name="avg_pool")(x)
    elif head.pooling == "max":
        x = layers.GlobalMaxPooling2D(data_format=f.data_format, name="max_pool")(x)
    if head.include_top:
        x = layers.Dense(head.classes, kernel_regularizer=f.regularizer(), name="logits")(x)
        # Softmax in float32 so that mixed-precision models still output float32 probabilities.
        x = layers.Activation(head.classifier_activation, dtype="float32", name="predictions")(x)
    return x


def ResNet(
    depth: int,
    version: str = "v2",
    family: str = "cifar",
    unit: str | None = None,
    *,
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    preprocessing: str | None = AUTO,
    features: str | Sequence[str] | None = None,
    **options: Unpack[ArchitectureOptions],
) -> keras.Model:
    """Build a ResNet of any valid depth: CIFAR 6n+2 (basic) / 9n+2 (bottleneck), ImageNet 18…200.

    ``unit`` defaults to basic for CIFAR; ImageNet depths fix it. Every other argument is that of
    the named factories (``help(keras_preact.ResNet164V2)``), plus the architecture options:
    ``placement`` (one of ``units.PLACEMENTS``; default ``original`` for v1, ``full_preact`` for
    v2), ``shortcut`` (``units.SHORTCUTS``; ``"none"`` builds the v1 paper's plain network),
    ``projection`` (``"A"``, ``"B"``, ``"C"``), ``bottleneck_stride`` (``"1x1"``/``"3x3"``),
    ``shortcut_scale`` (λ of constant scaling), ``gate_bias`` (initial b_g of the gates),
    ``shortcut_dropout``, ``weight_decay``, ``kernel_initializer``, ``bn_momentum``,
    ``bn_epsilon``, ``synchronized_bn``, ``width_multiplier``.

    Example: the v2 paper's Table 1 "exclusive gating" row on ResNet-110::

        keras_preact.ResNet(110, version="v1", shortcut="exclusive_gating", gate_bias=-6)
    """
    arch = architecture(depth, version, family, unit, **options)
    classes_given = classes is not None
    weights = _check_weights(weights)
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    named = weights_lib.is_named(weights)
    entry = (
        weights_lib.choose(weights, arch, model_name=name or arch.default_name) if named else None
    )
    if classes is None:
        classes = entry.classes if entry is not None else DEFAULT_CLASSES[family]
    if preprocessing == AUTO:
        preprocessing = entry.preprocessing if entry is not None else None
    head = _check_head(include_top, pooling, classes, classifier_activation)
    stages = _check_features(features, head, len(arch.counts))
    data_format = arch.layers.data_format
    if input_tensor is not None:
        if not keras.utils.is_keras_tensor(input_tensor):
            raise ValueError(
                f"input_tensor must be a Keras tensor (keras.Input), got {input_tensor!r}"
            )
        shape = _check_input_shape(tuple(input_tensor.shape[1:]), family, data_format)
    else:
        shape = _check_input_shape(input_shape, family, data_format)
    _check_preprocessing(preprocessing, shape[-1 if data_format == "channels_last" else 0])
    load_weights = None
    if named:
        # Published weights: read from the cache, or fetched, verified and checked now.
        load_weights = weights_lib.prepare(
            weights,
            arch,
            include_top=head.include_top,
            classes=head.classes,
            model_name=name or arch.default_name,
        ).load_into
    elif weights is not None:
        # A checkpoint is read and checked against the architecture before anything is built.
        load_weights = prepare_weights(
            weights,
            arch,
            include_top=head.include_top,
            classes=head.classes,
            classes_given=classes_given,
            model_name=name or arch.default_name,
        )
    inputs = input_tensor if input_tensor is not None else keras.Input(shape=shape, name="image")

    with deep_graph_recursion(arch.longest_path):
        x = inputs
        if preprocessing is not None:
            x = preprocessing_lib.normalization_layer(preprocessing, data_format)(x)
        x = _stem(x, arch)
        for s, (count, width) in enumerate(zip(arch.counts, arch.widths, strict=True), start=1):
            for u in range(1, count + 1):
                x = units.residual_unit(
                    x,
                    arch.layers,
                    arch.spec,
                    filters=width,
                    # CIFAR's first stage keeps 32×32; ImageNet's follows the max-pool.
                    stride=2 if (u == 1 and s > 1) else 1,
                    prefix=f"stage{s}_unit{u}",
                    first=(s == 1 and u == 1),
                )
        x = _head(x, arch, head)
        model = keras.Model(inputs, x, name=name or arch.default_name)
    use_fused_batch_norm(model)
    if load_weights is not None:
        load_weights(model)
    if stages is not None:
        model = features_lib.stage_model(model, stages, model.name)
    return model


# ---------------------------------------------------------------------------------------------
# Named models: one table and one docstring; keras_preact.factories has one factory each.

RESNET_DOC = """Instantiate {title}.

{paper}

Args:
    include_top: whether to include the global average pooling and the classifier.
    weights: ``None`` (random He initialisation); published weights by name: ``"imagenet"``,
        ``"cifar10"``, ``"cifar100"`` (the file whose layout the model's arguments describe) or a
        qualified name such as ``"torchvision:IMAGENET1K_V1"`` (``keras_preact.list_weights()``),
        fetched, verified and converted on first use, then read from the cache (a name that
        needs other arguments is refused with a line naming them); or the path of a local
        ``.weights.h5`` or ``.keras`` file for this architecture, or of a checkpoint of another
        library that holds it (``keras_preact.convert``: torchvision, timm, keras.applications,
        PyTorch CIFAR ResNets), recognised from its content and converted exactly.
    input_tensor: optional Keras tensor (output of ``keras.Input``) to use as the model's input.
    input_shape: ``(height, width, channels)``; defaults to {default_shape}. Height and width
        must be at least {min_size}.
    pooling: with ``include_top=False``: ``None`` (4-D feature map), ``"avg"`` or ``"max"``.
    classes: number of classes (default {default_classes}, or that of the named weights). With
        weights from a checkpoint or named, a number other than theirs gets a new, untrained
        classifier (left at the default, a checkpoint file with other classes is refused,
        naming its ``classes``).
    classifier_activation: activation of the ``predictions`` layer (``None`` returns logits);
        always computed in float32, also under a mixed-precision policy.
    name: model name (default ``{model_name}``).
    weight_decay: the papers' SGD weight decay (they use 1e-4), added as an L2 penalty of
        ``weight_decay / 2`` on every kernel so that its gradient is ``weight_decay · W``.
    preprocessing: ``"auto"`` (default: with named weights, the normalisation they were
        trained with; otherwise none), ``None`` (inputs already standardised) or a key of
        ``keras_preact.DATASET_STATS`` (``"cifar10"``, ``"imagenet"``, ``"imagenet_caffe"``, ...):
        a first ``Normalization`` layer named ``preprocess`` standardises raw [0, 255] pixels
        with those per-channel statistics.
    features: with ``include_top=False`` and no ``pooling``: the stages to return, e.g.
        ``("stage2", "stage3", "stage4")`` (or one name): the model's output is then a dict of
        those stages' feature maps, a backbone for detection or segmentation (strides 4, 8, 16,
        32 for ImageNet networks, 1, 2, 4 for CIFAR; v1 stages are taken after the unit's ReLU,
        v2 stages are the pre-activation sums, the last one without the head's BN-ReLU; see
        ``keras_preact.feature_extractor``).
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
    "plain": 'The plain counterpart of a v1 ResNet ("Deep Residual Learning for Image Recognition",\n'
    "He et al., 2015, section 4.1): the same convolutions, BN and ReLU, without shortcuts.",
}


@dataclasses.dataclass(frozen=True)
class ModelInfo(NamedNetwork):
    """A network by name: what it builds and what the papers report for it.

    ``keras_preact.resolve_model(name)`` returns one for a named model (``MODELS``) or for any
    valid CIFAR depth (``resnet38v1``, ``plain26v1``); ``info.build(**kwargs)`` builds it.
    """

    @classmethod
    def of(cls, network: NamedNetwork) -> ModelInfo:
        """The network of the catalogue (``keras_preact.catalogue``) that ``build`` builds."""
        fields = {f.name: getattr(network, f.name) for f in dataclasses.fields(network)}
        return cls(**fields)

    def build(self, **kwargs: Any) -> keras.Model:
        """Build the network; ``kwargs`` are those of the named factories."""
        for fixed in ("family", "version", "depth", "unit"):
            if fixed in kwargs:
                raise ValueError(f"{self.name} fixes {fixed}; use keras_preact.ResNet to choose it")
        if self.plain and kwargs.get("shortcut", "none") != "none":
            raise ValueError(f"{self.name} has no shortcuts; got shortcut={kwargs['shortcut']!r}")
        if kwargs.get("name") is None:
            kwargs["name"] = self.key
        if self.plain:
            kwargs["shortcut"] = "none"
        return ResNet(self.depth, self.version, self.family, self.unit, **kwargs)


MODELS: dict[str, ModelInfo] = {key: ModelInfo.of(network) for key, network in NETWORKS.items()}
"""The named networks of both papers (``keras_preact.catalogue.NETWORKS``), ready to build."""


def resolve_model(name: str, unit: str | None = None) -> ModelInfo:
    """The ``ModelInfo`` of a named model or of ``resnet<DEPTH>v<1|2>`` / ``plain<DEPTH>v<1|2>``.

    Names are case-insensitive. A generic name is any valid CIFAR depth (6n+2 with basic units,
    9n+2 with ``unit="bottleneck"``); it carries no paper numbers. Raises ValueError naming the bad
    name and what is allowed.

    >>> resolve_model("resnet164v2").paper_cifar10_error
    5.46
    >>> resolve_model("resnet38v1").depth
    38
    """
    network = resolve_network(name, unit)
    return MODELS.get(network.key) or ModelInfo.of(network)


def get_model(name: str, **kwargs: Unpack[ModelArguments]) -> keras.Model:
    """Build a model by name, e.g. ``get_model("resnet164v2", classes=100)`` (case-insensitive).

    Takes the named models (``MODEL_NAMES``) and ``resnet<DEPTH>v<1|2>`` / ``plain<DEPTH>v<1|2>``
    for any CIFAR depth; ``kwargs`` are those of the named factories.
    """
    return resolve_model(name, kwargs.pop("unit", None)).build(**kwargs)


def _check_features(features: Any, head: _Head, stages: int) -> tuple[str, ...] | None:
    """The stages ``features=`` asks for (None: the usual model), checked against the head."""
    if features is None:
        return None
    chosen = features_lib.check_stages(features, features_lib.stage_names(stages))
    if head.include_top:
        raise ValueError(
            f"features={features!r} returns stage outputs, not the classifier: pass "
            "include_top=False with it (got include_top=True)"
        )
    if head.pooling is not None:
        raise ValueError(
            f"features={features!r} returns the stages' feature maps: pass pooling=None with it "
            f"(got pooling={head.pooling!r})"
        )
    return chosen
