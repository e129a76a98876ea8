"""``convert_checkpoint``: the keras-preact network a checkpoint holds, built and loaded.

The checkpoint is read and checked against the architecture it holds first
(``keras_preact.convert.plan``), then the model is built with ``keras_preact.ResNet`` and loaded.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import keras

import keras_preact.convert.plan as planning
from keras_preact.catalogue import DEFAULT_CLASSES
from keras_preact.convert.layout import Assignment, SourceArchitecture
from keras_preact.convert.plan import detect, factory_call
from keras_preact.convert.readers import Checkpoint, read_checkpoint
from keras_preact.resnet import ResNet, architecture, resolve_model

PREPROCESSING_FROM_SOURCE = "source"


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
                f"{factory_call(source)}, not {info.name}"
            )
    if preprocessing == PREPROCESSING_FROM_SOURCE:
        preprocessing = source.preprocessing
    build = source.build_arguments
    arch = architecture(**build)
    default_name = source.model_name.lower() if source.model_name.isalnum() else None
    plan = planning.plan_checkpoint(
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
