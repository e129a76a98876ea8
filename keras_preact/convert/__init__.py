"""Trained weights from the checkpoints that exist, converted exactly into keras-preact networks.

Sources (one module each, its key layout declared as data):

* ``torchvision``: torchvision's ``resnet18/34/50/101/152`` state dicts (``.pth``) -> v1 ImageNet
  networks with ``bottleneck_stride="3x3"``.
* ``timm``: timm's ``resnetv2_50`` / ``resnetv2_101`` (``.safetensors`` or ``.pth``) -> v2
  ImageNet networks.
* ``keras_applications``: keras.applications' ``ResNet50/101/152`` weight files (the ``.h5``
  Keras caches) -> v1 ImageNet networks.
* ``cifar``: the common PyTorch CIFAR ResNets, v1 (akamaster/pytorch_resnet_cifar10: ResNet-20 …
  1202) and v2 pre-activation (ResNet-110/164/1001) -> the CIFAR networks.

The format and the source are recognised from the file's content, keys and shapes. Every tensor
is placed by name; a tensor without a place, a layer left without a tensor, or a shape that
differs is refused with a ``ValueError`` naming it, and nothing is loaded. Three ways in::

    model = keras_preact.ResNet50V1(weights="resnet50-0676ba61.pth", bottleneck_stride="3x3")
    conversion = keras_preact.convert.convert_checkpoint("resnet50-0676ba61.pth")
    python -m keras_preact.convert resnet50-0676ba61.pth --output resnet50.keras

Reading is safe: PyTorch files only through ``torch.load(weights_only=True)`` (and only when
torch is installed), safetensors and HDF5 without torch; no other pickle is ever loaded.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

from keras_preact.convert import cifar, keras_applications, timm, torchvision
from keras_preact.convert.layout import Assignment, SourceArchitecture, assign
from keras_preact.convert.readers import FORMATS, Checkpoint, read_checkpoint

if TYPE_CHECKING:
    import keras

LAYOUTS = {layout.NAME: layout for layout in (torchvision, timm, keras_applications, cifar)}
"""The source layouts understood, by name."""

PREPROCESSING_FROM_SOURCE = "source"


def detect(checkpoint: Checkpoint, *, option_a: str = "split") -> SourceArchitecture:
    """The source layout and keras-preact architecture of a checkpoint, from its keys and shapes.

    ``option_a`` applies to PyTorch CIFAR v1 checkpoints only (see ``keras_preact.convert.cifar``).
    Raises ValueError for a layout not understood (listing those that are) or a variant of a
    known one that keras-preact does not build.
    """
    tensors = checkpoint.tensors
    for layout in LAYOUTS.values():
        if layout.matches(tensors):
            if layout is cifar:
                return cifar.describe(tensors, option_a=option_a)
            return layout.describe(tensors)
    names = sorted(tensors)
    shown = ", ".join(repr(k) for k in names[:4]) + (", ..." if len(names) > 4 else "")
    understood = "; ".join(layout.DESCRIPTION for layout in LAYOUTS.values())
    raise ValueError(
        f"{checkpoint.path!r} ({FORMATS[checkpoint.format]}, {len(names)} tensors: {shown}) has "
        f"a key layout keras-preact does not know; it understands: {understood}"
    )


def inspect_checkpoint(path: str | os.PathLike, *, option_a: str = "split") -> SourceArchitecture:
    """Read ``path`` and ``detect`` what it holds."""
    return detect(read_checkpoint(path), option_a=option_a)


@dataclasses.dataclass(frozen=True)
class CheckpointPlan:
    """A checkpoint checked against a model's architecture, ready to load into the built model.

    ``classifier``: ``"load"`` (the checkpoint's classifier), ``"new"`` (the model's own, freshly
    initialised: other classes) or ``"drop"`` (``include_top=False``).
    """

    checkpoint: Checkpoint
    source: SourceArchitecture
    classifier: str
    placement: tuple[dict, int] | None = dataclasses.field(default=None, repr=False)
    """The checkpoint's tensors placed into keras-preact's layers, and the counters ignored
    (``place`` of the layout), once a plan has checked that every tensor has a place."""

    def load_into(self, model: keras.Model) -> Assignment:
        """Place every tensor into ``model`` (a ValueError, and nothing set, if any does not fit)."""
        placed, ignored = self.placement or _place(self.checkpoint, self.source)
        return assign(
            model, placed, source=self.source, classifier=self.classifier, ignored=ignored
        )


def _place(checkpoint: Checkpoint, source: SourceArchitecture) -> tuple[dict, int]:
    """Every tensor placed by the source's layout (a ValueError naming those without a place)."""
    return LAYOUTS[source.layout].place(checkpoint.tensors, source)


def plan_checkpoint(
    checkpoint: Checkpoint | str | os.PathLike,
    architecture,
    *,
    include_top: bool = True,
    classes: int | None = None,
    classes_given: bool = True,
    option_a: str = "split",
    model_name: str | None = None,
) -> CheckpointPlan:
    """Check that a checkpoint fits ``architecture`` (``keras_preact.architecture(...)``).

    ``classes_given``: whether the caller chose ``classes``; if not, a checkpoint with another
    number of classes is refused (naming ``classes=N``) rather than its classifier replaced.

    Raises:
        ValueError: unreadable checkpoint, values that cannot be weights, layout not understood,
            a tensor without a place, or a checkpoint that needs other arguments (one line
            naming them, and the factory call that builds it).
    """
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = read_checkpoint(checkpoint)
    source = detect(checkpoint, option_a=option_a)
    name = model_name or architecture.default_name
    needs = _needs(source, architecture)
    what = f"{checkpoint.path!r} holds {source.source}"
    if "version" in needs:
        raise ValueError(
            f"{what}, a {source.version} ({_VERSION_WORDS[source.version]}) network; it cannot "
            f"load into {name}, a {architecture.version} network: build {_factory_call(source)}"
        )
    if needs:
        listed = ", ".join(
            f"{k}={v!r} (the model has {k}={have!r})" for k, (v, have) in needs.items()
        )
        raise ValueError(f"{what}; {name} needs {listed}: build {_factory_call(source)}")
    classifier = _classifier(source, include_top, classes, classes_given, what)
    # Tensors without a place are refused now, before the model is built.
    return CheckpointPlan(checkpoint, source, classifier, _place(checkpoint, source))


_VERSION_WORDS = {"v1": "post-activation", "v2": "pre-activation"}


def _needs(source: SourceArchitecture, arch) -> dict[str, tuple[Any, Any]]:
    """The arguments whose value the checkpoint needs and the architecture does not have."""
    spec = arch.spec
    have = {
        "family": arch.family,
        "version": arch.version,
        "depth": arch.depth,
        "unit": spec.unit,
        "placement": spec.placement,
        "shortcut": spec.shortcut,
        "projection": spec.projection,
        "width_multiplier": arch.width_multiplier,
    }
    want = {
        "family": source.family,
        "version": source.version,
        "depth": source.depth,
        "unit": source.unit,
        "placement": "original" if source.version == "v1" else "full_preact",
        "shortcut": "identity",
        "projection": source.options.get("projection", "B"),
        "width_multiplier": 1,
    }
    if source.unit == "bottleneck" and spec.unit == "bottleneck":
        have["bottleneck_stride"] = spec.bottleneck_stride
        want["bottleneck_stride"] = source.options["bottleneck_stride"]
    needs = {k: (want[k], have[k]) for k in want if want[k] != have[k]}
    # Another family or depth is another network: name only what tells it.
    if "depth" in needs or "family" in needs:
        needs = {k: v for k, v in needs.items() if k in ("family", "version", "depth")}
    return needs


def _factory_call(source: SourceArchitecture) -> str:
    """``keras_preact.ResNet50V1(bottleneck_stride='3x3')``, the call that builds the network."""
    from keras_preact.resnet import MODELS, architecture

    default = architecture(source.depth, source.version, source.family, source.unit)
    options = {
        k: v
        for k, v in source.options.items()
        if v != getattr(default.spec, k)
        and not (k == "bottleneck_stride" and source.unit != "bottleneck")
    }
    args = ", ".join(f"{k}={v!r}" for k, v in options.items())
    info = MODELS.get(f"resnet{source.depth}{source.version}")
    if info is not None and (info.family, info.unit) == (source.family, source.unit):
        return f"keras_preact.{info.name}({args})"
    if source.family == "cifar" and source.unit == "basic" and info is None:
        return f"keras_preact.get_model('resnet{source.depth}{source.version}'{', ' + args if args else ''})"
    unit = f", unit={source.unit!r}" if source.family == "cifar" else ""
    return (
        f"keras_preact.ResNet({source.depth}, version={source.version!r}, "
        f"family={source.family!r}{unit}{', ' + args if args else ''})"
    )


def _classifier(
    source: SourceArchitecture, include_top: bool, classes: int | None, given: bool, what: str
) -> str:
    if not include_top:
        return "drop"
    if source.classes is None:
        if given:
            return "new"
        raise ValueError(
            f"{what} without a classifier; build with include_top=False, or pass classes=N for "
            "a new classifier"
        )
    if classes == source.classes:
        return "load"
    if given:
        return "new"
    raise ValueError(
        f"{what} with {source.classes} classes; pass classes={source.classes} (or another "
        "classes=N for a new classifier, or include_top=False to drop it)"
    )


@dataclasses.dataclass(frozen=True)
class Conversion:
    """A converted network and what was done.

    Attributes:
        model: the keras-preact model, weights loaded.
        source: what the checkpoint holds.
        checkpoint: the checkpoint read.
        loaded: how many tensors and layers were filled, and what became of the classifier.
        preprocessing: the ``DATASET_STATS`` key of the model's ``preprocess`` layer, or None.
    """

    model: keras.Model
    source: SourceArchitecture
    checkpoint: Checkpoint
    loaded: Assignment
    preprocessing: str | None


def convert_checkpoint(
    path: str | os.PathLike,
    *,
    model: str | None = None,
    include_top: bool = True,
    classes: int | None = None,
    input_shape: Any = None,
    preprocessing: str | None = PREPROCESSING_FROM_SOURCE,
    option_a: str = "split",
    name: str | None = None,
    classifier_activation: Any = "softmax",
) -> Conversion:
    """Build the keras-preact network a checkpoint holds and load it.

    Args:
        path: the checkpoint (see ``readers`` for the formats).
        model: optionally the keras-preact model it must be (``"resnet50v1"``); refused if the
            checkpoint holds another.
        include_top: False drops the classifier (a feature extractor).
        classes: default: the checkpoint's; another number gets a new classifier.
        input_shape: default: 224×224×3 for ImageNet networks, 32×32×3 for CIFAR ones.
        preprocessing: ``"source"`` (default): the input normalisation the source's published
            weights expect, as the model's first layer, where the layout tells it (None for the
            CIFAR layouts); None for none; or a ``keras_preact.DATASET_STATS`` key.
        option_a: PyTorch CIFAR v1 only: ``"split"`` (akamaster) or ``"after"``.
        name: model name (default: the factory's, e.g. ``resnet50v1``).
        classifier_activation: of the ``predictions`` layer.

    The network is built with the source's batch-norm epsilon (keras.applications': 1.001e-5).
    """
    from keras_preact.resnet import DEFAULT_CLASSES, ResNet, architecture, resolve_model

    checkpoint = read_checkpoint(path)
    source = detect(checkpoint, option_a=option_a)
    if model is not None:
        info = resolve_model(model)
        if (info.family, info.version, info.depth, info.unit, info.plain) != (
            source.family,
            source.version,
            source.depth,
            source.unit,
            False,
        ):
            raise ValueError(
                f"{checkpoint.path!r} holds {source.source}, which keras-preact builds as "
                f"{_factory_call(source)}, not {info.name}"
            )
    if preprocessing == PREPROCESSING_FROM_SOURCE:
        preprocessing = source.preprocessing
    build = source.build_arguments
    arch = architecture(**build)
    default_name = source.model_name.lower() if source.model_name.isalnum() else None
    plan = plan_checkpoint(
        checkpoint,
        arch,
        include_top=include_top,
        classes=classes if classes is not None else source.classes,
        classes_given=classes is not None,
        option_a=option_a,
        model_name=name or default_name,
    )
    if classes is None:
        classes = source.classes if source.classes is not None else DEFAULT_CLASSES[source.family]
    net = ResNet(
        **build,
        include_top=include_top,
        classes=classes,
        input_shape=input_shape,
        preprocessing=preprocessing,
        name=name or default_name,
        classifier_activation=classifier_activation,
    )
    loaded = plan.load_into(net)
    return Conversion(net, source, checkpoint, loaded, preprocessing)


__all__ = [
    "LAYOUTS",
    "Checkpoint",
    "CheckpointPlan",
    "Conversion",
    "SourceArchitecture",
    "convert_checkpoint",
    "detect",
    "inspect_checkpoint",
    "plan_checkpoint",
    "read_checkpoint",
]
