"""What every source layout shares: the architecture a checkpoint holds, and placing its tensors.

A source layout (``torchvision``, ``timm``, ``keras_applications``, ``cifar``) declares, as data,
how its tensor names map to keras-preact's layer names (``RULES``: a regular expression over the
source's module name, the keras-preact layer it fills, and the kind of layer). ``place`` applies the
rules to every tensor of a checkpoint and yields the keras-preact weights, in Keras' layout, each
with the source tensor it came from; a tensor no rule claims is refused. ``checkpoint_depth``
counts a checkpoint's units per stage to tell its depth, for every layout. ``assign`` then fills a
model's layers by name, refusing any layer left empty and any shape that differs (naming the
first such tensor and both shapes).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from keras_preact.catalogue import (
    CIFAR_LAYERS_PER_UNIT,
    IMAGENET_DEPTHS,
    NETWORKS,
    STAGE_WIDTHS,
    default_options,
)
from keras_preact.convert.readers import COUNTERS

if TYPE_CHECKING:
    import keras

# Weight roles of each kind of keras-preact layer, in the order of ``layer.weights``.
ROLES = {
    "conv": ("kernel",),
    "bn": ("gamma", "beta", "moving_mean", "moving_variance"),
    "dense": ("kernel", "bias"),
}
CLASSIFIER = "logits"


@dataclasses.dataclass(frozen=True)
class SourceArchitecture:
    """The network a checkpoint holds, in keras-preact's terms.

    Attributes:
        layout: the source layout's name (``LAYOUTS`` key), e.g. ``"torchvision"``.
        source: the source network in its own words, e.g. ``"torchvision resnet50"``.
        family, version, depth, unit: as ``keras_preact.ResNet`` takes them.
        options: the architecture options the checkpoint needs besides the defaults, e.g.
            ``{"bottleneck_stride": "3x3"}`` (also those equal to a default, so that they can be
            checked against a model built with other ones).
        classes: classes of the checkpoint's classifier, or None when it has none.
        bn_epsilon: the source's batch-norm epsilon.
        preprocessing: the ``keras_preact.DATASET_STATS`` key of the input normalisation the
            source's published weights expect, or None when the checkpoint cannot tell.
        notes: what the conversion does beyond copying, in words for the user.
        layout_options: choices of the source layout that the keys cannot tell (``cifar``'s
            ``option_a``).
    """

    layout: str
    source: str
    family: str
    version: str
    depth: int
    unit: str
    options: Mapping[str, Any]
    classes: int | None
    bn_epsilon: float = 1e-5
    preprocessing: str | None = None
    notes: tuple[str, ...] = ()
    layout_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def model_name(self) -> str:
        """The keras-preact factory that builds it, e.g. ``ResNet50V1``."""
        key = f"resnet{self.depth}{self.version}"
        info = NETWORKS.get(key)
        if info is not None and info.family == self.family and info.unit == self.unit:
            return info.name
        if info is None and self.family == "cifar":  # resnet<DEPTH>v<1|2> of any CIFAR depth
            return f"ResNet{self.depth}{self.version.upper()}"
        return f"ResNet({self.depth}, {self.version}, {self.family}, {self.unit})"

    @property
    def build_arguments(self) -> dict[str, Any]:
        """``keras_preact.ResNet`` arguments that build this network (without the head)."""
        return dict(
            depth=self.depth,
            version=self.version,
            family=self.family,
            unit=self.unit,
            bn_epsilon=self.bn_epsilon,
            **self.options,
        )

    def summary(self) -> str:
        """``ResNet50V1 (bottleneck_stride='3x3'), 1000 classes``."""
        options = ", ".join(
            f"{k}={v!r}" for k, v in self.options.items() if not _default(k, v, self)
        )
        classes = "no classifier" if self.classes is None else f"{self.classes} classes"
        return f"{self.model_name}{f' ({options})' if options else ''}, {classes}"


def _default(option: str, value: Any, source: SourceArchitecture) -> bool:
    """Whether ``option=value`` is what keras-preact builds anyway for this version and family."""
    current = default_options(source.family, source.version)
    return current.get(option) == value or (
        option == "bottleneck_stride" and source.unit != "bottleneck"
    )


@dataclasses.dataclass(frozen=True)
class Rule:
    """Source module ``pattern`` (named groups ``stage``, ``unit``, ``i``) fills ``layer``.

    ``layer`` is a template such as ``"stage{stage}_unit{unit}_conv{i}"``; ``kind`` is ``conv``,
    ``bn`` or ``dense`` (a classifier stored as a 1×1 convolution is ``dense`` too).
    """

    pattern: str
    layer: str
    kind: str

    def match(self, module: str, stage_base: int, unit_base: int) -> str | None:
        """The keras-preact layer name for ``module``, or None if the rule does not apply."""
        m = re.fullmatch(self.pattern, module)
        if m is None:
            return None
        groups = m.groupdict()
        fields = {}
        if "stage" in groups:
            fields["stage"] = int(groups["stage"]) - stage_base + 1
        if "unit" in groups:
            fields["unit"] = int(groups["unit"]) - unit_base + 1
        if "i" in groups:
            fields["i"] = int(groups["i"])
        return self.layer.format(**fields)


def checkpoint_depth(
    keys: Iterable[str], pattern: str, first_stage: int, family: str, unit: str, source: str
) -> int:
    """The depth of the ``family`` network of ``unit`` units whose checkpoint has these ``keys``.

    Its units per stage are the distinct ``unit`` indices that ``pattern`` (named groups ``stage``
    and ``unit``) finds at the start of the keys, in the stages numbered from ``first_stage`` (the
    layout's ``STAGE_BASE``). A ValueError names the units per stage of a network keras-preact
    does not build, and ``source``, the checkpoint's kind.
    """
    seen: dict[int, set[int]] = {first_stage + s: set() for s in range(len(STAGE_WIDTHS[family]))}
    for key in keys:
        m = re.match(pattern, key)
        if m and int(m["stage"]) in seen:
            seen[int(m["stage"])].add(int(m["unit"]))
    counts = tuple(map(len, seen.values()))
    if family == "cifar":
        if len(set(counts)) != 1:
            raise ValueError(
                f"the {source} checkpoint has {counts} units per stage; keras-preact's CIFAR "
                "networks have the same number in each of the three stages"
            )
        return 3 * CIFAR_LAYERS_PER_UNIT[unit] * counts[0] + 2
    for depth, (table_unit, table_counts) in IMAGENET_DEPTHS.items():
        if table_unit == unit and table_counts == counts:
            return depth
    known = ", ".join(f"{d} {u} {c}" for d, (u, c) in IMAGENET_DEPTHS.items())
    raise ValueError(
        f"the {source} checkpoint has {unit} units {counts} per stage, a depth keras-preact does "
        f"not build (it builds {known})"
    )


@dataclasses.dataclass
class Placed:
    """One keras-preact weight (``layer``/``role``) in Keras' layout, and where it came from.

    ``key`` is the source tensor it is (named in messages, with ``source_shape`` and the shape
    ``to_source_shape`` gives a Keras shape in the source's layout); ``folded`` are source
    tensors folded into it (a convolution bias into a moving mean).
    """

    value: np.ndarray
    key: str
    source_shape: tuple[int, ...]
    to_source_shape: Callable[[tuple[int, ...]], tuple[int, ...]]
    folded: tuple[str, ...] = ()


# Tensor names inside a module, per framework: (module suffix, role) for each kind of layer.
TORCH_PARAMETERS = {
    "conv": {"weight": "kernel"},
    "bn": {
        "weight": "gamma",
        "bias": "beta",
        "running_mean": "moving_mean",
        "running_var": "moving_variance",
    },
    "dense": {"weight": "kernel", "bias": "bias"},
}
TORCH_IGNORED = COUNTERS  # counters of training steps, no part of the function


def torch_to_keras(kind: str, role: str, array: np.ndarray) -> Placed | None:
    """A PyTorch parameter in Keras' layout (None when its shape cannot be that kind's)."""
    shape = tuple(array.shape)
    if role == "kernel" and kind == "conv":
        if array.ndim != 4:
            return None
        # (out, in, kh, kw) -> (kh, kw, in, out)
        return Placed(
            np.ascontiguousarray(array.transpose(2, 3, 1, 0)), "", shape, _inverse((2, 3, 1, 0))
        )
    if role == "kernel" and kind == "dense":
        if array.ndim == 4 and array.shape[2:] == (1, 1):  # a 1×1 convolution as classifier
            return Placed(
                np.ascontiguousarray(array[:, :, 0, 0].T),
                "",
                shape,
                lambda s: (s[1], s[0], 1, 1),
            )
        if array.ndim != 2:
            return None
        return Placed(np.ascontiguousarray(array.T), "", shape, lambda s: (s[1], s[0]))
    if array.ndim != 1:
        return None
    return Placed(array, "", shape, lambda s: s)


def _inverse(perm: Sequence[int]) -> Callable[[tuple[int, ...]], tuple[int, ...]]:
    """Shape of a source array from the shape of ``source.transpose(perm)``."""
    inverse = np.argsort(perm)
    return lambda s: tuple(s[j] for j in inverse)


def place_torch(
    tensors: Mapping[str, np.ndarray],
    rules: Iterable[Rule],
    *,
    stage_base: int,
    unit_base: int,
    layout: str,
) -> tuple[dict[tuple[str, str], Placed], int]:
    """Place every tensor of a PyTorch state dict by ``rules``; return the weights and the
    number of ignored counters. Raises ValueError naming the first tensor no rule places."""
    rules = tuple(rules)
    placed: dict[tuple[str, str], Placed] = {}
    ignored = 0
    unplaced = []
    for key, array in tensors.items():
        module, _, param = key.rpartition(".")
        if param in TORCH_IGNORED:
            ignored += 1
            continue
        target = None
        for rule in rules:
            layer = rule.match(module, stage_base, unit_base)
            role = TORCH_PARAMETERS[rule.kind].get(param)
            if layer is not None and role is not None:
                target = (layer, role, rule.kind)
                break
        item = torch_to_keras(target[2], target[1], array) if target else None
        if item is None:
            unplaced.append(key)
            continue
        item.key = key
        placed[target[:2]] = item
    if unplaced:
        raise_unplaced(unplaced, layout)
    return placed, ignored


def raise_unplaced(keys: Sequence[str], layout: str) -> None:
    """Refuse tensors that the layout has no place for."""
    shown = ", ".join(repr(k) for k in keys[:5]) + (
        f" and {len(keys) - 5} more" if len(keys) > 5 else ""
    )
    raise ValueError(
        f"the checkpoint has {len(keys)} tensor(s) the {layout} layout has no place for in a "
        f"keras-preact network: {shown}"
    )


@dataclasses.dataclass(frozen=True)
class Assignment:
    """What was loaded into a model.

    Attributes:
        tensors: checkpoint tensors that went into the model.
        ignored: checkpoint tensors that are no part of the function (batch-norm step counters).
        dropped: checkpoint tensors left out on request (the classifier, for no or other classes).
        layers: layers filled.
        classifier: ``"loaded"``, ``"new"`` (other classes: the model's own initialisation) or
            ``"dropped"`` (the model has none).
    """

    tensors: int
    ignored: int
    dropped: int
    layers: int
    classifier: str


def assign(
    model: keras.Model,
    placed: Mapping[tuple[str, str], Placed],
    *,
    source: SourceArchitecture,
    classifier: str,
    ignored: int = 0,
) -> Assignment:
    """Fill every weighted layer of ``model`` from ``placed``; nothing is set unless all fit.

    ``classifier`` is ``"load"`` (the ``logits`` layer takes the checkpoint's classifier),
    ``"new"`` (it keeps its fresh initialisation) or ``"drop"`` (the model has none).
    Batch norms whose epsilon differs from the source's get the difference folded into their
    moving variance (``v + eps_source - eps_model``), so that they compute what the source does.
    """
    plan: list[tuple[keras.layers.Layer, list[np.ndarray]]] = []
    used: set[tuple[str, str]] = set()
    tensors = set()
    for layer in model.layers:
        if not layer.weights or layer.name.endswith("_shortcut_pad"):
            continue  # option A's fixed 0/1 kernel is part of the architecture, not a weight
        if layer.name == CLASSIFIER and classifier != "load":
            continue
        kind = _kind(layer)
        values = []
        for role, weight in zip(ROLES[kind], layer.weights, strict=True):
            item = placed.get((layer.name, role))
            if item is None:
                raise ValueError(
                    f"the checkpoint ({source.source}) has no tensor for {model.name}'s "
                    f"{layer.name} {role} (shape {tuple(weight.shape)})"
                )
            expected = tuple(weight.shape)
            if tuple(item.value.shape) != expected:
                raise ValueError(
                    f"checkpoint tensor {item.key!r} has shape {item.source_shape}, but "
                    f"{model.name}'s {layer.name} needs {item.to_source_shape(expected)}: the "
                    "checkpoint is another depth or width"
                )
            values.append(item.value)
            used.add((layer.name, role))
            tensors.update((item.key, *item.folded))
        if kind == "bn":
            values = _fold_epsilon(layer, values, source)
        plan.append((layer, values))
    dropped = [k for k in placed if k[0] == CLASSIFIER and classifier != "load"]
    left = [placed[k].key for k in placed if k not in used and k not in dropped]
    if left:
        raise_unplaced(left, source.layout)
    for layer, values in plan:
        layer.set_weights(values)
    return Assignment(
        tensors=len(tensors),
        ignored=ignored,
        dropped=len(dropped),
        layers=len(plan),
        classifier={"load": "loaded", "new": "new", "drop": "dropped"}[classifier],
    )


def _kind(layer: keras.layers.Layer) -> str:
    import keras  # convert imports without Keras (its --help)

    if isinstance(layer, keras.layers.BatchNormalization):
        return "bn"
    if isinstance(layer, keras.layers.Dense):
        return "dense"
    if isinstance(layer, keras.layers.Conv2D) and not layer.use_bias:
        return "conv"
    raise ValueError(
        f"layer {layer.name!r} ({type(layer).__name__}) is not part of the networks checkpoints "
        "convert into (the papers' ResNets with identity shortcuts)"
    )


def _fold_epsilon(layer, values: list[np.ndarray], source: SourceArchitecture) -> list[np.ndarray]:
    """Batch norm ``(x - m) / sqrt(v + eps_source)`` as ``(x - m) / sqrt(v' + eps_model)``."""
    if layer.epsilon == source.bn_epsilon:
        return values
    gamma, beta, mean, variance = values
    folded = variance.astype(np.float64) + (source.bn_epsilon - layer.epsilon)
    if (folded < 0).any():
        raise ValueError(
            f"{layer.name} has bn_epsilon={layer.epsilon}, the checkpoint {source.bn_epsilon}, "
            f"and its moving variance is too small to absorb the difference: build the model "
            f"with bn_epsilon={source.bn_epsilon}"
        )
    return [gamma, beta, mean, folded.astype(np.float32)]
