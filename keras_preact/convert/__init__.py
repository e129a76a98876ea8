"""Trained weights from the checkpoints that exist, converted exactly into keras-preact networks.

Sources (one module each, its key layout declared as data):

* ``torchvision``: torchvision's ``resnet18/34/50/101/152`` state dicts (``.pth``) -> v1 ImageNet
  networks with ``bottleneck_stride="3x3"``.
* ``timm``: timm's ``resnetv2_50`` / ``resnetv2_101`` (``.safetensors`` or ``.pth``) -> v2
  ImageNet networks.
* ``keras_applications``: keras.applications' ``ResNet50/101/152`` weight files (the ``.h5``
  Keras caches) -> v1 ImageNet networks.
* ``cifar``: the common PyTorch CIFAR ResNets, v1 (akamaster/pytorch_resnet_cifar10: ResNet-20 …
  1202) and v2 pre-activation (ResNet-110/164/1001) -> the CIFAR networks.

The format and the source are recognised from the file's content, keys and shapes. Every tensor
is placed by name; a tensor without a place, a layer left without a tensor, or a shape that
differs is refused with a ``ValueError`` naming it, and nothing is loaded. Three ways in::

    model = keras_preact.ResNet50V1(weights="resnet50-0676ba61.pth", bottleneck_stride="3x3")
    conversion = keras_preact.convert.convert_checkpoint("resnet50-0676ba61.pth")
    python -m keras_preact.convert resnet50-0676ba61.pth --output resnet50.keras

Reading is safe: PyTorch files only through ``torch.load(weights_only=True)`` (and only when
torch is installed), safetensors and HDF5 without torch; no other pickle is ever loaded.

Checking a checkpoint against an architecture (``plan_checkpoint``, in ``convert.plan``) needs no
Keras; ``convert_checkpoint`` (in ``convert.conversion``) builds the model, and is imported on
first use, so that ``import keras_preact.convert`` and ``python -m keras_preact.convert --help``
do not load Keras.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from keras_preact.convert.layout import SourceArchitecture
from keras_preact.convert.plan import (
    LAYOUTS,
    CheckpointPlan,
    detect,
    inspect_checkpoint,
    plan_checkpoint,
)
from keras_preact.convert.readers import Checkpoint, read_checkpoint

# Defined in keras_preact.convert.conversion, which imports Keras and the builder: imported on
# first use (module __getattr__ below), seen by type checkers through this import.
_BUILDING = ("Conversion", "PREPROCESSING_FROM_SOURCE", "convert_checkpoint")
if TYPE_CHECKING:
    from keras_preact.convert.conversion import (
        PREPROCESSING_FROM_SOURCE as PREPROCESSING_FROM_SOURCE,
    )
    from keras_preact.convert.conversion import Conversion as Conversion
    from keras_preact.convert.conversion import convert_checkpoint as convert_checkpoint
else:

    def __getattr__(name: str) -> Any:
        if name not in _BUILDING:
            raise AttributeError(f"module 'keras_preact.convert' has no attribute {name!r}")
        value = getattr(importlib.import_module("keras_preact.convert.conversion"), name)
        globals()[name] = value
        return value


__all__ = [
    "LAYOUTS",
    "Checkpoint",
    "CheckpointPlan",
    "Conversion",
    "SourceArchitecture",
    "convert_checkpoint",
    "detect",
    "inspect_checkpoint",
    "plan_checkpoint",
    "read_checkpoint",
]
