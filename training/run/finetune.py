"""Trained networks for fine-tuning and testing: loaded from a ``.keras`` file or published weights,
given a normalisation layer, or rebuilt (so that the run's input size, dtype policy, weight decay and
batch-norm synchronisation apply) up to its pooled features with a new classifier, frozen up to a
stage (frozen batch normalisation uses its stored statistics).
"""

from __future__ import annotations

import re
from typing import Any

import keras

import keras_preact
from keras_preact.command_line import UserError
from keras_preact.preprocessing import PREPROCESS_LAYER, normalization_layer
from keras_preact.weights import is_named

HEAD = ("logits", "predictions")  # the classifier, replaced
FEATURES = "avg_pool"  # the pooled features the new classifier reads

_STAGE = re.compile(r"^stage(\d+)_")


def stage_of(layer_name: str) -> int | None:
    """The stage a layer belongs to: 0 for ``stem_*``, S for ``stageS_*``, None otherwise."""
    if layer_name.startswith("stem_"):
        return 0
    match = _STAGE.match(layer_name)
    return int(match.group(1)) if match else None


def named(model: str, weights: str) -> keras.Model:
    """The network ``model`` (``resnet50v1``) with published ``weights`` (fetched or cached)."""
    try:
        return keras_preact.get_model(model, weights=weights)
    except ValueError as e:  # a name that does not fit, or a download that failed
        raise UserError(f"--weights {weights}: {e}") from None


def load(path: str, option: str = "--weights") -> keras.Model:
    """The model in a ``.keras`` file, uncompiled (``UserError`` naming ``option`` if unusable)."""
    try:
        model = keras_preact.load_model(path, compile=False)
    except Exception as e:  # any loader failure means "not a usable model file"
        raise UserError(f"cannot load {option} {path}: {type(e).__name__}: {e}") from None
    if not isinstance(model, keras.Model) or len(model.inputs) != 1:
        raise UserError(f"{option} {path} is not a network with one image input")
    return model


def has_preprocess_layer(model: keras.Model) -> bool:
    return any(layer.name == PREPROCESS_LAYER for layer in model.layers)


def _clone(
    source: keras.Model,
    shape: tuple[int, ...],
    normalization: str | None,
    clone_function: Any = None,
) -> keras.Model:
    """``source`` cloned onto an input of ``shape``, after a ``normalization`` layer in the same graph."""
    inputs = keras.Input(shape=shape, name=source.inputs[0].name or "image")
    kwargs: dict[str, Any] = {"input_tensors": inputs}
    if clone_function is not None:
        kwargs["clone_function"] = clone_function
    if normalization is not None:
        normalized = normalization_layer(normalization)(inputs)

        def call(layer: keras.layers.Layer, *args: Any, **kw: Any) -> Any:
            return layer(*(normalized if a is inputs else a for a in args), **kw)

        kwargs["call_function"] = call
    with keras_preact.deep_graph_recursion():
        clone = keras.models.clone_model(source, **kwargs)
    if normalization is not None and not has_preprocess_layer(clone):
        raise RuntimeError(f"the {PREPROCESS_LAYER!r} layer was not put in front of {source.name}")
    return clone


def with_normalization(model: keras.Model, normalization: str | None) -> keras.Model:
    """``model`` with a ``preprocess`` layer of ``normalization`` (``None``: none) in front."""
    if normalization is None:
        return model
    clone = _clone(model, tuple(model.inputs[0].shape[1:]), normalization)
    clone.set_weights(model.get_weights())
    return clone


def features_model(
    source: keras.Model,
    *,
    input_shape: tuple[int, int, int] | None = None,
    weight_decay: float = 0.0,
    synchronized_bn: bool = False,
    normalization: str | None = None,
) -> keras.Model:
    """``source`` up to its pooled features (or a global average pool), rebuilt under the current
    dtype policy with the recipe's L2 penalty, ``input_shape`` and ``normalization``, and its weights."""

    def rebuild(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        config.pop("dtype", None)  # the policy in force now (mixed precision when asked for)
        if "kernel_regularizer" in config:
            config["kernel_regularizer"] = _l2(weight_decay)
        if "synchronized" in config:
            config["synchronized"] = synchronized_bn
        return layer.__class__.from_config(config)

    shape = tuple(input_shape or source.inputs[0].shape[1:])
    try:
        clone = _clone(source, shape, normalization, rebuild)
    except (ValueError, TypeError) as e:
        raise UserError(f"cannot rebuild {source.name!r} for fine-tuning: {e}") from None
    names = [layer.name for layer in clone.layers]
    if FEATURES in names:
        features = clone.get_layer(FEATURES).output
    else:
        last = clone.outputs[0]
        if len(last.shape) != 4:
            raise UserError(
                f"{source.name!r} has no {FEATURES!r} layer and its output is not a feature map: "
                "save the network with include_top=True, or include_top=False and pooling='avg'"
            )
        features = keras.layers.GlobalAveragePooling2D(name=FEATURES)(last)
    body = keras.Model(clone.inputs[0], features, name=source.name)
    for layer in body.layers:
        if layer.weights and layer.name in names:
            try:
                layer.set_weights(source.get_layer(layer.name).get_weights())
            except ValueError as e:
                raise UserError(
                    f"weights of layer {layer.name!r} do not fit input {shape}: {e}"
                ) from None
    return body


def from_file(
    path: str,
    *,
    classes: int,
    input_shape: tuple[int, int, int],
    weight_decay: float,
    synchronized_bn: bool = False,
    freeze: str = "none",
    model: str | None = None,
    normalization: str | None = None,
) -> keras.Model:
    """The network in ``path`` (or ``model`` with published weights ``path``) with a new classifier
    over ``classes``, frozen up to ``freeze`` (``training.choices.FREEZE_STAGES``)."""
    source = named(model, path) if model is not None and is_named(path) else load(path)
    body = features_model(
        source,
        input_shape=input_shape,
        weight_decay=weight_decay,
        synchronized_bn=synchronized_bn,
        normalization=normalization,
    )
    return with_classifier(body, classes, weight_decay=weight_decay, freeze=freeze)


def with_classifier(
    body: keras.Model, classes: int, *, weight_decay: float = 0.0, freeze: str = "none"
) -> keras.Model:
    """``body`` (image -> features) with a new ``logits`` layer and float32 softmax ``predictions``;
    layers up to the ``freeze`` stage (``backbone``: all but the classifier) are not trained."""
    x = keras.layers.Dense(classes, kernel_regularizer=_l2(weight_decay), name=HEAD[0])(
        body.outputs[0]
    )
    x = keras.layers.Activation("softmax", dtype="float32", name=HEAD[1])(x)
    model = keras.Model(body.inputs[0], x, name=body.name)
    if freeze == "backbone":
        for layer in model.layers:
            layer.trainable = layer.name in HEAD
    elif freeze != "none":
        last = 0 if freeze == "stem" else int(freeze.removeprefix("stage"))
        stages = {stage_of(layer.name) for layer in model.layers} - {None}
        if last not in stages:
            raise UserError(
                f"--freeze {freeze}: {body.name!r} has no such stage (it has stem"
                f"{''.join(f', stage{s}' for s in sorted(stages) if s)})"
            )
        for layer in model.layers:
            stage = stage_of(layer.name)
            if stage is not None and stage <= last:
                layer.trainable = False
    return model


def _l2(weight_decay: float) -> keras.regularizers.Regularizer | None:
    return keras.regularizers.L2(weight_decay / 2) if weight_decay else None
