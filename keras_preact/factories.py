"""The named networks of both papers, one explicit factory each (as keras.applications has them).

Each builds its entry of ``keras_preact.MODELS`` with the one builder, ``keras_preact.ResNet``;
they share one docstring template. ``keras_preact.get_model(name)`` reaches them by name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import keras

from keras_preact.resnet import (
    _PAPERS,
    DEFAULT_CLASSES,
    DEFAULT_INPUT_SIZE,
    MIN_INPUT_SIZE,
    MODELS,
    RESNET_DOC,
    ModelInfo,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from keras_preact.resnet import ModelOptions


def _build(name: str, arguments: dict[str, Any]) -> keras.Model:
    """Build the named model from its factory's arguments (the factory's ``locals()``)."""
    arguments = dict(arguments)
    options = arguments.pop("options")
    return MODELS[name.lower()].build(**arguments, **options)


def ResNet20V1(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """ResNet-20 v1 for CIFAR (basic units)."""
    return _build("ResNet20V1", locals())


def ResNet32V1(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """ResNet-32 v1 for CIFAR (basic units)."""
    return _build("ResNet32V1", locals())


def ResNet44V1(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """ResNet-44 v1 for CIFAR (basic units)."""
    return _build("ResNet44V1", locals())


def ResNet56V1(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """ResNet-56 v1 for CIFAR (basic units)."""
    return _build("ResNet56V1", locals())


def ResNet110V1(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """ResNet-110 v1 for CIFAR (basic units)."""
    return _build("ResNet110V1", locals())


def ResNet1202V1(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """ResNet-1202 v1 for CIFAR (basic units)."""
    return _build("ResNet1202V1", locals())


def ResNet110V2(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """ResNet-110 v2 for CIFAR (basic units)."""
    return _build("ResNet110V2", locals())


def ResNet164V2(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """ResNet-164 v2 for CIFAR (bottleneck units)."""
    return _build("ResNet164V2", locals())


def ResNet1001V2(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """ResNet-1001 v2 for CIFAR (bottleneck units)."""
    return _build("ResNet1001V2", locals())


def ResNet18V1(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """ResNet-18 v1 for ImageNet (basic units)."""
    return _build("ResNet18V1", locals())


def ResNet34V1(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """ResNet-34 v1 for ImageNet (basic units)."""
    return _build("ResNet34V1", locals())


def ResNet50V1(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """ResNet-50 v1 for ImageNet (bottleneck units)."""
    return _build("ResNet50V1", locals())


def ResNet101V1(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """ResNet-101 v1 for ImageNet (bottleneck units)."""
    return _build("ResNet101V1", locals())


def ResNet152V1(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """ResNet-152 v1 for ImageNet (bottleneck units)."""
    return _build("ResNet152V1", locals())


def ResNet200V1(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """ResNet-200 v1 for ImageNet (bottleneck units)."""
    return _build("ResNet200V1", locals())


def ResNet18V2(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """ResNet-18 v2 for ImageNet (basic units)."""
    return _build("ResNet18V2", locals())


def ResNet34V2(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """ResNet-34 v2 for ImageNet (basic units)."""
    return _build("ResNet34V2", locals())


def ResNet50V2(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """ResNet-50 v2 for ImageNet (bottleneck units)."""
    return _build("ResNet50V2", locals())


def ResNet101V2(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """ResNet-101 v2 for ImageNet (bottleneck units)."""
    return _build("ResNet101V2", locals())


def ResNet152V2(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """ResNet-152 v2 for ImageNet (bottleneck units)."""
    return _build("ResNet152V2", locals())


def ResNet200V2(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """ResNet-200 v2 for ImageNet (bottleneck units)."""
    return _build("ResNet200V2", locals())


def Plain20V1(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """Plain-20 v1 for CIFAR (basic units)."""
    return _build("Plain20V1", locals())


def Plain32V1(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """Plain-32 v1 for CIFAR (basic units)."""
    return _build("Plain32V1", locals())


def Plain44V1(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """Plain-44 v1 for CIFAR (basic units)."""
    return _build("Plain44V1", locals())


def Plain56V1(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """Plain-56 v1 for CIFAR (basic units)."""
    return _build("Plain56V1", locals())


def Plain110V1(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """Plain-110 v1 for CIFAR (basic units)."""
    return _build("Plain110V1", locals())


def Plain18V1(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """Plain-18 v1 for ImageNet (basic units)."""
    return _build("Plain18V1", locals())


def Plain34V1(
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int | None = None,
    classifier_activation: Any = "softmax",
    name: str | None = None,
    **options: Unpack[ModelOptions],
) -> keras.Model:
    """Plain-34 v1 for ImageNet (basic units)."""
    return _build("Plain34V1", locals())


def _doc(info: ModelInfo) -> str:
    size = DEFAULT_INPUT_SIZE[info.family]
    family = "CIFAR" if info.family == "cifar" else "ImageNet"
    kind = "Plain" if info.plain else "ResNet"
    return RESNET_DOC.format(
        title=f"{kind}-{info.depth} {info.version} ({family}, {info.unit} units)",
        paper=_PAPERS["plain" if info.plain else info.version],
        default_shape=f"({size}, {size}, 3)",
        min_size=MIN_INPUT_SIZE[info.family],
        default_classes=DEFAULT_CLASSES[info.family],
        model_name=info.key,
    )


FACTORIES: dict[str, Callable[..., keras.Model]] = {
    key: globals()[info.name] for key, info in MODELS.items()
}
"""Lower-case model name -> its factory."""

for _key, _factory in FACTORIES.items():
    _factory.__doc__ = _doc(MODELS[_key])
