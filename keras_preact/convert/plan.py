"""Checking a checkpoint against an architecture, before the model is built.

``plan_checkpoint`` reads a checkpoint, recognises its source layout (``detect``), refuses one that
needs other arguments than the architecture has (naming them and the factory call that builds
it) and places every tensor; the plan's ``load_into`` then fills the built model. ``weights=``
(``keras_preact.saving``, ``keras_preact.weights``) and ``convert_checkpoint`` use it. Nothing here
imports Keras or builds a model.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

from keras_preact.catalogue import NETWORKS, default_options
from keras_preact.convert import cifar, keras_applications, timm, torchvision
from keras_preact.convert.layout import Assignment, SourceArchitecture, assign
from keras_preact.convert.readers import FORMATS, Checkpoint, read_checkpoint

if TYPE_CHECKING:
    import keras

LAYOUTS = {layout.NAME: layout for layout in (torchvision, timm, keras_applications, cifar)}
"""The source layouts understood, by name."""


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
            f"load into {name}, a {architecture.version} network: build {factory_call(source)}"
        )
    if needs:
        listed = ", ".join(
            f"{k}={v!r} (the model has {k}={have!r})" for k, (v, have) in needs.items()
        )
        raise ValueError(f"{what}; {name} needs {listed}: build {factory_call(source)}")
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


def factory_call(source: SourceArchitecture) -> str:
    """``keras_preact.ResNet50V1(bottleneck_stride='3x3')``, the call that builds the network."""
    default = default_options(source.family, source.version)
    options = {
        k: v
        for k, v in source.options.items()
        if v != default.get(k) and not (k == "bottleneck_stride" and source.unit != "bottleneck")
    }
    args = ", ".join(f"{k}={v!r}" for k, v in options.items())
    info = NETWORKS.get(f"resnet{source.depth}{source.version}")
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
