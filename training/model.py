"""The network a run trains: a named keras_preact model, or any CIFAR depth through the generic builder.

``--model`` takes a registry name (``keras_preact.MODEL_NAMES``: resnet20v1 ... resnet1001v2 and the
ImageNet ones) or ``resnet<DEPTH>v<1|2>`` for any valid CIFAR depth (6n+2 with basic units, 9n+2 with
``unit=bottleneck``), e.g. ``resnet8v1`` for tests or ``resnet272v2`` with bottlenecks. Architecture
options (``unit``, ``width_multiplier``, ``shortcut``, ...) go to the builder unchanged.
"""

from __future__ import annotations

import re
from typing import Any

import keras

import keras_preact
from keras_preact.cli import UserError

_GENERIC = re.compile(r"^resnet(\d+)(v[12])$")

CIFAR_INPUT = (32, 32, 3)


def describe_names() -> str:
    """The accepted model names, for messages and ``--help``."""
    return f"{', '.join(keras_preact.MODEL_NAMES)}, or resnet<DEPTH>v<1|2> (any CIFAR depth)"


def check_model(name: str, options: dict[str, Any]) -> None:
    """Raise ``UserError`` for an unknown name or an impossible depth, without building anything."""
    key = name.lower()
    if key in keras_preact.MODEL_NAMES:
        fixed = {"family", "version", "depth", "unit"} & set(options)
        if fixed:
            raise UserError(
                f"{name} fixes {', '.join(sorted(fixed))}; use resnet<DEPTH>v<1|2> to choose them"
            )
        return
    match = _GENERIC.match(key)
    if not match:
        raise UserError(f"unknown model {name!r}: choose one of {describe_names()}")
    try:
        keras_preact.units_per_stage("cifar", int(match.group(1)), options.get("unit"))
    except ValueError as e:
        raise UserError(
            f"unknown model {name!r}: {e}; the named models are {', '.join(keras_preact.MODEL_NAMES)}"
        ) from None


def build_model(
    name: str,
    options: dict[str, Any],
    *,
    classes: int,
    weight_decay: float,
    synchronized_bn: bool,
    input_shape: tuple[int, int, int] = CIFAR_INPUT,
    preprocessing: str = "cifar10",
) -> keras.Model:
    """Build the (uncompiled) model: raw-pixel input of ``input_shape`` (a ``preprocess`` layer with
    the ``preprocessing`` dataset's statistics), softmax over ``classes``, the recipe's weight decay
    as an L2 penalty."""
    check_model(name, options)
    kwargs = dict(
        options,
        classes=classes,
        input_shape=input_shape,
        preprocessing=preprocessing,
        weight_decay=weight_decay,
        synchronized_bn=synchronized_bn,
    )
    key = name.lower()
    try:
        if key in keras_preact.MODEL_NAMES:
            return keras_preact.get_model(key, **kwargs)
        match = _GENERIC.match(key)
        return keras_preact.ResNet(int(match.group(1)), version=match.group(2), **kwargs)
    except TypeError as e:  # an option the builder does not know
        raise UserError(f"model {name!r}: {e}") from None
