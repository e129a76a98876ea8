"""keras.applications' ``ResNet50/101/152`` weights (the HDF5 files Keras caches) into keras-preact v1.

Key layout (``keras.applications.resnet``; files such as
``resnet50_weights_tf_dim_ordering_tf_kernels.h5`` and its ``_notop`` twin, in
``~/.keras/models``)::

    conv1_conv                  7×7/2 stem convolution (kernel, bias) -> stem_conv
    conv1_bn                    its batch norm                        -> stem_bn
    conv{S}_block{B}_{I}_conv   unit convolutions, I = 1, 2, 3        -> stage{S-1}_unit{B}_conv{I}
    conv{S}_block{B}_{I}_bn     their batch norms                     -> stage{S-1}_unit{B}_bn{I}
    conv{S}_block1_0_conv/_bn   1×1 projection and its batch norm     -> stage{S-1}_unit1_shortcut_conv/_bn
    predictions                 classifier (Dense, softmax)           -> logits

These networks are keras-preact's v1 ImageNet bottleneck networks as built by default: the stride
is on the first 1×1 convolution (``bottleneck_stride="1x1"``), strided convolutions and the
max-pool pad symmetrically (the max-pool's zero padding follows a ReLU, so it never wins). Three
differences are converted exactly:

* Their convolutions carry a bias. Each is followed by a batch norm, so the bias moves into that
  norm's moving mean: ``BN(conv(x) + b)`` with mean ``m`` is ``BN(conv(x))`` with mean ``m - b``.
* Their batch norms use epsilon 1.001e-5 (keras-preact: 1e-5). ``keras_preact.convert`` builds
  with ``bn_epsilon=1.001e-5``; loaded through ``weights=`` into a model built with another
  epsilon, the difference is folded into each moving variance (``v + 1.001e-5 - eps``), which
  gives the same normalisation up to the float32 rounding of ``v``.
* They take BGR images with the ImageNet mean subtracted and no scaling (``preprocess_input``'s
  "caffe" mode). The stem kernel's input channels are reversed, so that the keras-preact network
  takes RGB like every keras-preact model; its input normalisation is then the RGB mean
  subtraction ``preprocessing="imagenet_caffe"``.

keras.applications' ``ResNet50V2`` (stride in the last unit of each stage) is not a keras-preact
network and is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from keras_preact.convert.layout import (
    ROLES,
    Placed,
    Rule,
    SourceArchitecture,
    checkpoint_depth,
    raise_unplaced,
)

NAME = "keras.applications"
DESCRIPTION = (
    "keras.applications ResNet50/101/152 (conv1_conv, conv2_block1_1_conv, ..., predictions)"
)
FORMATS = ("keras-h5",)
STAGE_BASE, UNIT_BASE = 2, 1
BN_EPSILON = 1.001e-5
_BLOCK = r"conv(?P<stage>[2-5])_block(?P<unit>\d+)"
RULES = (
    Rule(r"conv1_conv", "stem_conv", "conv"),
    Rule(r"conv1_bn", "stem_bn", "bn"),
    Rule(_BLOCK + r"_(?P<i>[123])_conv", "stage{stage}_unit{unit}_conv{i}", "conv"),
    Rule(_BLOCK + r"_(?P<i>[123])_bn", "stage{stage}_unit{unit}_bn{i}", "bn"),
    Rule(_BLOCK + r"_0_conv", "stage{stage}_unit{unit}_shortcut_conv", "conv"),
    Rule(_BLOCK + r"_0_bn", "stage{stage}_unit{unit}_shortcut_bn", "bn"),
    Rule(r"predictions", "logits", "dense"),
)


def matches(tensors: Mapping[str, np.ndarray]) -> bool:
    """keras.applications' ResNet names: ``conv1_conv/kernel`` and ``conv2_block1_...``."""
    return "conv1_conv/kernel" in tensors and any(k.startswith("conv2_block1_") for k in tensors)


def describe(tensors: Mapping[str, np.ndarray]) -> SourceArchitecture:
    """The keras-preact network of a keras.applications ResNet weights file."""
    if "post_bn/gamma" in tensors or any("_preact_bn/" in k for k in tensors):
        raise ValueError(
            "the keras.applications weights are a ResNetV2 (ResNet50V2/101V2/152V2), whose "
            "stride sits in the last unit of each stage: not a keras-preact network; "
            "keras-preact converts keras.applications ResNet50/101/152"
        )
    depth = checkpoint_depth(
        tensors, _BLOCK, STAGE_BASE, "imagenet", "bottleneck", "keras.applications ResNet"
    )
    kernel = tensors.get("predictions/kernel")
    return SourceArchitecture(
        layout=NAME,
        source=f"keras.applications ResNet{depth}",
        family="imagenet",
        version="v1",
        depth=depth,
        unit="bottleneck",
        options={"bottleneck_stride": "1x1"},
        classes=None if kernel is None else int(kernel.shape[-1]),
        bn_epsilon=BN_EPSILON,
        preprocessing="imagenet_caffe",
        notes=(
            "convolution biases folded into the following batch norms' moving means",
            "batch norms with keras.applications' epsilon 1.001e-5 (through weights= into a "
            "model built with another, the difference goes into the moving variances)",
            "stem kernel's input channels reversed: the model takes RGB "
            "(preprocessing 'imagenet_caffe': RGB mean subtraction, no scaling), not "
            "keras.applications' BGR",
        ),
    )


def place(tensors: Mapping[str, np.ndarray], source: SourceArchitecture):
    """keras-preact weights of every array of the file; biases folded, stem made RGB."""
    placed: dict[tuple[str, str], Placed] = {}
    biases: dict[str, tuple[str, np.ndarray]] = {}
    unplaced = []
    for key, array in tensors.items():
        module, _, role = key.rpartition("/")
        target = next(
            (
                (layer, rule.kind)
                for rule in RULES
                if (layer := rule.match(module, STAGE_BASE, UNIT_BASE)) is not None
            ),
            None,
        )
        if target is None or not _fits(target[1], role, array):
            unplaced.append(key)
            continue
        layer, kind = target
        if kind == "conv" and role == "bias":
            biases[layer] = (key, array)
            continue
        shape = tuple(array.shape)
        placed[(layer, role)] = Placed(array, key, shape, lambda s: s)
    if unplaced:
        raise_unplaced(unplaced, NAME)
    for conv, (key, bias) in biases.items():
        # The batch norm that follows each convolution: stem_conv -> stem_bn,
        # ..._conv2 -> ..._bn2, ..._shortcut_conv -> ..._shortcut_bn.
        bn = re.sub(r"conv(\d?)$", r"bn\1", conv)
        mean = placed.get((bn, "moving_mean"))
        if mean is None or mean.value.shape != bias.shape:
            raise_unplaced([key], NAME)
        mean.value = (mean.value - bias).astype(np.float32)
        mean.folded = (key,)
    stem = placed.get(("stem_conv", "kernel"))
    if stem is not None and stem.value.ndim == 4 and stem.value.shape[2] == 3:
        stem.value = np.ascontiguousarray(stem.value[:, :, ::-1, :])  # BGR -> RGB
    return placed, 0


def _fits(kind: str, role: str, array: np.ndarray) -> bool:
    if kind == "conv":
        return (role == "kernel" and array.ndim == 4) or (role == "bias" and array.ndim == 1)
    return role in ROLES[kind] and array.ndim == (2 if role == "kernel" else 1)
