"""The network a run trains: any name ``keras_preact.resolve_model`` takes.

``--model`` takes a registry name (``keras_preact.MODEL_NAMES``: resnet20v1 ... resnet1001v2, the
plain networks plain20v1 ... plain110v1, and the ImageNet ones) or ``resnet<DEPTH>v<1|2>`` /
``plain<DEPTH>v<1|2>`` for any valid CIFAR depth (6n+2 with basic units, 9n+2 with
``unit=bottleneck``), e.g. ``resnet8v1`` for tests or ``resnet272v2`` with bottlenecks.
Architecture options (``unit``, ``width_multiplier``, ``shortcut``, ...) go to the builder unchanged.
"""

from __future__ import annotations

from typing import Any

import keras

import keras_preact
from keras_preact.cli import UserError

CIFAR_INPUT = (32, 32, 3)


def describe_names() -> str:
    """The accepted model names, for messages and ``--help``."""
    return (
        f"{', '.join(keras_preact.MODEL_NAMES)}, or resnet<DEPTH>v<1|2> / plain<DEPTH>v<1|2> "
        "(any CIFAR depth)"
    )


def check_model(name: str, options: dict[str, Any]) -> keras_preact.ModelInfo:
    """The resolved model (``UserError`` for an unknown name or an impossible depth), unbuilt."""
    fixed = {"family", "version", "depth"} & set(options)
    if fixed:
        raise UserError(f"{name} fixes {', '.join(sorted(fixed))}; choose them in the name")
    try:
        return keras_preact.resolve_model(name, options.get("unit"))
    except ValueError as e:
        raise UserError(str(e)) from None


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
    info = check_model(name, options)
    kwargs = dict(
        {k: v for k, v in options.items() if k != "unit"},
        classes=classes,
        input_shape=input_shape,
        preprocessing=preprocessing,
        weight_decay=weight_decay,
        synchronized_bn=synchronized_bn,
    )
    try:
        return info.build(**kwargs)
    except TypeError as e:  # an option the builder does not know
        raise UserError(f"model {name!r}: {e}") from None
