"""A plain Keras functional model of the same CIFAR ResNets, written inline the way Keras users do.

It is the baseline that shows what keras-preact's builder and training pipeline cost: the same
layers (see `bench.torch_resnet` for the architecture), stock Keras layers only, and the usual
``model.fit(x, y, batch_size=...)`` on NumPy arrays with augmentation as Keras preprocessing layers.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from bench.architectures import BOTTLENECK_EXPANSION, STAGE_WIDTHS, cifar_architecture


def _conv(filters: int, kernel: int, stride: int, weight_decay: float) -> layers.Conv2D:
    return layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=keras.regularizers.L2(weight_decay / 2) if weight_decay else None,
    )


def _bn() -> layers.BatchNormalization:
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5)


def _shortcut_a(x, filters: int, stride: int):
    """Option A: subsample by the stride and zero-pad the new channels (no parameters)."""
    extra = filters - x.shape[-1]
    if stride == 1 and not extra:
        return x
    return layers.Lambda(
        lambda t: ops.pad(t[:, ::stride, ::stride, :], [[0, 0], [0, 0], [0, 0], [0, extra]])
    )(x)


def _basic_v1(x, filters: int, stride: int, weight_decay: float):
    out = layers.ReLU()(_bn()(_conv(filters, 3, stride, weight_decay)(x)))
    out = _bn()(_conv(filters, 3, 1, weight_decay)(out))
    return layers.ReLU()(layers.Add()([out, _shortcut_a(x, filters, stride)]))


def _bottleneck_v2(x, filters: int, stride: int, preact: bool, weight_decay: float):
    width = filters // BOTTLENECK_EXPANSION
    act = layers.ReLU()(_bn()(x)) if preact else x
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv(filters, 1, stride, weight_decay)(act)
    out = _conv(width, 1, 1, weight_decay)(act)
    out = _conv(width, 3, stride, weight_decay)(layers.ReLU()(_bn()(out)))
    out = _conv(filters, 1, 1, weight_decay)(layers.ReLU()(_bn()(out)))
    return layers.Add()([out, shortcut])


def build_plain_keras(
    name: str,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    classes: int = 10,
    weight_decay: float = 1e-4,
) -> keras.Model:
    """The network for raw NHWC pixels in [0, 255]; softmax output (``UserError`` if unknown)."""
    arch = cifar_architecture(name)
    inputs = keras.Input((32, 32, 3))
    x = layers.Normalization(mean=mean, variance=[s * s for s in std])(inputs)
    x = layers.ReLU()(_bn()(_conv(STAGE_WIDTHS[0], 3, 1, weight_decay)(x)))
    for stage, width in enumerate(STAGE_WIDTHS):
        filters = width if arch.version == 1 else width * BOTTLENECK_EXPANSION
        for i in range(arch.blocks_per_stage):
            stride = 2 if stage > 0 and i == 0 else 1
            if arch.version == 1:
                x = _basic_v1(x, filters, stride, weight_decay)
            else:
                x = _bottleneck_v2(x, filters, stride, stage + i > 0, weight_decay)
    if arch.version == 2:
        x = layers.ReLU()(_bn()(x))
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(
        classes,
        activation="softmax",
        kernel_regularizer=keras.regularizers.L2(weight_decay / 2) if weight_decay else None,
    )(x)
    return keras.Model(inputs, outputs, name=f"plain_{arch.name}")


def plain_augmentation() -> keras.Sequential:
    """The papers' augmentation as stock Keras layers: a random shift of up to 4 pixels with a zero
    border (what padding by 4 and cropping back does) per image, and a random horizontal flip."""
    shift = 4 / 32
    return keras.Sequential(
        [
            layers.RandomTranslation(shift, shift, fill_mode="constant", interpolation="nearest"),
            layers.RandomFlip("horizontal"),
        ],
        name="augment",
    )


def plain_training_model(network: keras.Model) -> keras.Model:
    """Augmentation layers in front of the network (they pass inputs through at inference)."""
    inputs = keras.Input(network.input_shape[1:])
    return keras.Model(inputs, network(plain_augmentation()(inputs)), name=f"{network.name}_train")


def count_trainable(model: keras.Model) -> int:
    """Trainable parameters, comparable with `bench.torch_resnet.count_params`."""
    return sum(int(ops.size(w)) for w in model.trainable_weights)


def weight_shapes(model: keras.Model) -> list[tuple[int, ...]]:
    """Trainable weight shapes, sorted: compare with `bench.torch_resnet.weight_shapes`."""
    return sorted(tuple(w.shape) for w in model.trainable_weights)


def conv_strides(model: keras.Model) -> list[tuple[int, ...]]:
    """Every convolution with trainable weights as ``(kernel h, kernel w, in, out, stride h,
    stride w)``, sorted: where a network downsamples, which weight shapes alone do not show (compare
    with `bench.torch_resnet.conv_strides`). An option-A shortcut's fixed subsampling is no such
    convolution."""
    return sorted(
        (*layer.kernel.shape, *layer.strides)
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.kernel.trainable
    )
