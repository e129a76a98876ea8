"""The network a run trains: any name ``keras_preact.resolve_model`` takes (``MODEL_NAMES``, or
``resnet|plain<DEPTH>v<1|2>`` for any valid CIFAR depth), resolved once with its architecture options
(``unit``, ``width_multiplier``, ``shortcut``, ...), which go to the builder unchanged.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from typing import Any

import keras

import keras_preact
from keras_preact.command_line import UserError
from keras_preact.weights import choose, is_named

CIFAR_INPUT = (32, 32, 3)

_SET_BY_THE_RUN = {
    "weight_decay": "the recipe sets it (--weight-decay)",
    "synchronized_bn": "--sync-bn sets it",
}
OPTIONS: tuple[str, ...] = (
    "unit",
    "weights",
    *(
        name
        for name, p in inspect.signature(keras_preact.architecture).parameters.items()
        if p.kind is p.KEYWORD_ONLY and name not in _SET_BY_THE_RUN
    ),
)
"""``--model-option``'s: ``keras_preact.ResNet``'s architecture options and starting ``weights``."""


def resolve(name: str, options: Mapping[str, Any]) -> tuple[keras_preact.ModelInfo, dict[str, Any]]:
    """The ``ModelInfo`` of ``name`` and the builder's ``options`` (``unit`` is the info's), checked
    without building anything (``UserError`` for any name or option the builder refuses)."""
    fixed = {"family", "version", "depth"} & set(options)
    if fixed:
        raise UserError(f"{name} fixes {', '.join(sorted(fixed))}; choose them in the name")
    for option, why in _SET_BY_THE_RUN.items():
        if option in options:
            raise UserError(f"model option {option} is not taken: {why}")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise UserError(
            f"unknown model option(s) {', '.join(unknown)}: choose from {', '.join(OPTIONS)}"
        )
    try:
        info = keras_preact.resolve_model(name, options.get("unit"))
    except ValueError as e:
        raise UserError(str(e)) from None
    build = {k: v for k, v in options.items() if k != "unit"}
    weights = build.pop("weights", None)
    if weights is not None and not is_named(weights) and not os.path.isfile(weights):
        raise UserError(f"model option weights={weights!r}: no such file")
    if info.plain and build.get("shortcut", "none") != "none":
        raise UserError(f"{info.key} has no shortcuts; got shortcut={build['shortcut']!r}")
    try:
        architecture(info, build)
    except ValueError as e:
        raise UserError(f"model {info.key}: {e}") from None
    return info, build if weights is None else {**build, "weights": weights}


def check_weights(name: str, weights: str) -> None:
    """``UserError`` unless published ``weights`` (``imagenet``, ...) fit the network ``name``
    (a file is checked when it is loaded)."""
    if is_named(weights):
        info, _ = resolve(name, {})
        try:
            choose(weights, architecture(info, {}), model_name=info.key)
        except ValueError as e:
            raise UserError(f"--weights {weights}: {e}") from None


def build_model(
    info: keras_preact.ModelInfo,
    options: Mapping[str, Any],
    *,
    classes: int,
    weight_decay: float,
    synchronized_bn: bool,
    input_shape: tuple[int, int, int] = CIFAR_INPUT,
    preprocessing: str = "cifar10",
) -> keras.Model:
    """Build the (uncompiled) model ``resolve`` checked, on raw pixels normalised with the
    ``preprocessing`` dataset's statistics (``UserError`` when starting weights do not fit)."""
    kwargs = dict(
        options,
        classes=classes,
        input_shape=input_shape,
        preprocessing=preprocessing,
        weight_decay=weight_decay,
        synchronized_bn=synchronized_bn,
    )
    if "weights" not in options:
        return info.build(**kwargs)
    try:
        return info.build(**kwargs)
    except ValueError as e:  # everything else was checked by resolve: the file is the input
        raise UserError(f"model option weights={options['weights']!r}: {e}") from None


def architecture(
    info: keras_preact.ModelInfo, options: Mapping[str, Any]
) -> keras_preact.Architecture:
    """The ``keras_preact.Architecture`` of a resolved model (``ValueError``: impossible option)."""
    options = {k: v for k, v in options.items() if k != "weights"}
    return keras_preact.architecture(
        info.depth, info.version, info.family, info.unit, **{"shortcut": info.shortcut, **options}
    )


def count_params(info: keras_preact.ModelInfo, options: Mapping[str, Any], classes: int) -> int:
    """Trainable parameters of a resolved CIFAR network (as the papers count them)."""
    model = info.build(classes=classes, input_shape=CIFAR_INPUT, **options)
    count = keras_preact.model_stats(model).trainable_params
    del model
    keras.backend.clear_session()
    return count
