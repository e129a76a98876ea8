"""Backbones for detection and segmentation: the stage outputs of a network as a named dict.

Like timm's ``features_only=True`` and keras-hub's ``pyramid_outputs``, a feature extractor is a
``keras.Model`` from the image to ``{"stage1": tensor, "stage2": tensor, ...}``, sharing the
network's layers (and so its weights)::

    backbone = keras_preact.ResNet50V2(include_top=False, features=("stage2", "stage3", "stage4"))
    backbone = keras_preact.feature_extractor(model)  # any keras-preact model, also a loaded one

The names and their strides (input size / feature size):

=========  ====================  =================
name       ImageNet networks     CIFAR networks
=========  ====================  =================
stage1     4 (×64·e channels)    1 (×16·e channels)
stage2     8 (×128·e)            2 (×32·e)
stage3     16 (×256·e)           4 (×64·e)
stage4     32 (×512·e)           —
=========  ====================  =================

(``e`` is 4 for bottleneck units, 1 for basic ones, times ``width_multiplier``.)

Each name is the output of the stage's last residual unit, the tensor the next stage starts from:

* v1 (``placement="original"``): after the unit's ReLU, layer ``stage{s}_unit{n}_out_relu``, so
  every stage is non-negative, as in torchvision's and keras.applications' ResNets.
* v2 (``placement="full_preact"``): the unit's sum, layer ``stage{s}_unit{n}_add``, *before* any
  BN-ReLU: a pre-activation network normalises a sum only at the start of the next unit. The
  last stage gets no BN-ReLU either: ``post_bn`` and ``post_relu`` belong to the head, which a
  feature extractor leaves out, as timm's ``features_only`` and keras-hub's ``pyramid_outputs`` do
  for pre-activation ResNets; so all v2 stages are the same kind of tensor. A detection or
  segmentation head on v2 features should normalise them (e.g. BN-ReLU, or a 1×1 convolution
  followed by BN) before using them.
* The other placements, shortcuts and plain networks: the last layer of the stage's last unit.

The stages are found by their layer names (``stage{s}_unit{u}_...``), so a model loaded from a
``.keras`` file works as well as a freshly built one. NumPy and Keras only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import keras

_UNIT_LAYER = re.compile(r"^stage(\d+)_unit(\d+)_")


def stage_names(family_stages: int) -> tuple[str, ...]:
    """``("stage1", ..., "stageN")`` for a network of ``family_stages`` stages."""
    return tuple(f"stage{s}" for s in range(1, family_stages + 1))


def check_stages(
    stages: Any, available: Sequence[str], argument: str = "features"
) -> tuple[str, ...]:
    """Validate a choice of stages (None: all of them; one name; or a sequence of names).

    Returns the chosen names in stage order; raises ValueError echoing the bad value as
    ``{argument}=...``.
    """
    if stages is None:
        return tuple(available)
    chosen = (stages,) if isinstance(stages, str) else stages
    if (
        not isinstance(chosen, list | tuple)
        or not chosen
        or not all(isinstance(s, str) for s in chosen)
    ):
        raise ValueError(
            f"{argument} must be a stage name or a non-empty sequence of them "
            f"({', '.join(map(repr, available))}), got {stages!r}"
        )
    unknown = [s for s in chosen if s not in available]
    if unknown:
        raise ValueError(
            f"unknown stage {unknown[0]!r} in {argument}={stages!r}; this network has "
            f"{', '.join(map(repr, available))}"
        )
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"{argument} names a stage twice: {stages!r}")
    return tuple(s for s in available if s in chosen)


def stage_layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """The layer whose output is each stage's output (see the module docstring), by stage name.

    A unit's layers all feed its output, and a functional model lists its layers in graph order,
    so the unit's output layer is the last of its layers in ``model.layers``.
    """
    last_unit: dict[int, int] = {}
    for layer in model.layers:
        match = _UNIT_LAYER.match(layer.name)
        if match:
            s, u = int(match.group(1)), int(match.group(2))
            last_unit[s] = max(u, last_unit.get(s, 0))
    outputs: dict[str, keras.layers.Layer] = {}
    for s in sorted(last_unit):
        prefix = f"stage{s}_unit{last_unit[s]}_"
        outputs[f"stage{s}"] = [layer for layer in model.layers if layer.name.startswith(prefix)][
            -1
        ]
    return outputs


def stage_model(model: keras.Model, stages: Sequence[str], name: str | None = None) -> keras.Model:
    """The feature extractor of ``model`` for ``stages``, names already checked against it."""
    layers = stage_layers(model)
    return keras.Model(model.input, {s: layers[s].output for s in stages}, name=name or model.name)


def feature_extractor(
    model: keras.Model, stages: str | Sequence[str] | None = None, *, name: str | None = None
) -> keras.Model:
    """A model from ``model``'s input to its stage outputs, ``{"stage1": tensor, ...}``.

    Works on any keras-preact network, built (``keras_preact.ResNet50V1(...)``, with or without
    its classifier) or loaded from a ``.keras`` file; the extractor shares the network's layers,
    so it has the same weights (and training either trains both). Saved, it loads in plain Keras.

    Args:
        model: a keras-preact network (its layers are named ``stage1_unit1_...``).
        stages: the stages to return: ``None`` (all: ``stage1`` … ``stage4`` for ImageNet
            networks, ``stage1`` … ``stage3`` for CIFAR networks), one name, or a sequence of
            names. The outputs are in stage order whatever the order given.
        name: the extractor's name (default: the network's).

    Returns:
        A functional ``keras.Model`` whose output is a dict of the stages' feature maps: strides
        4, 8, 16, 32 for ImageNet networks and 1, 2, 4 for CIFAR networks; which tensor each
        name is for v1 and v2 networks is in ``help(keras_preact.features)``.

    Raises:
        ValueError: ``model`` is not a keras-preact network, or ``stages`` or ``name`` is bad.
    """
    if not isinstance(model, keras.Model) or not _is_graph(model):
        raise ValueError(
            f"feature_extractor takes a functional keras.Model built by keras-preact, got {model!r}"
        )
    available = tuple(stage_layers(model))
    if not available:
        raise ValueError(
            f"model {model.name!r} has no keras-preact stages (layers named stage1_unit1_...); "
            "feature_extractor takes a network built by keras-preact or loaded from its .keras file"
        )
    chosen = check_stages(stages, available, "stages")
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    return stage_model(model, chosen, name)


def _is_graph(model: keras.Model) -> bool:
    """Whether ``model`` is a functional graph (a subclassed model has no symbolic input)."""
    try:
        model.input  # noqa: B018  (raises for a model that was never called on keras.Input)
    except (AttributeError, ValueError):
        return False
    return True
