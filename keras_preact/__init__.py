"""keras-preact: the residual networks of He et al. (2015, 2016) for Keras 3.

>>> import keras_preact
>>> model = keras_preact.ResNet164V2(weights=None)          # doctest: +SKIP
>>> keras_preact.get_model("resnet20v1", classes=100)        # doctest: +SKIP
>>> keras_preact.ResNet(110, version="v1", shortcut="scaling")  # the v2 paper's ablations
>>> keras_preact.Plain56V1()                                  # the v1 paper's plain network
>>> keras_preact.ResNet50V1(weights="imagenet")            # doctest: +SKIP
>>> keras_preact.ResNet50V1(weights="resnet50-0676ba61.pth", bottleneck_stride="3x3")  # doctest: +SKIP
>>> keras_preact.decode_predictions(model.predict(images), top=5)  # doctest: +SKIP
>>> keras_preact.ResNet50V2(include_top=False, features=("stage2", "stage3", "stage4"))  # doctest: +SKIP

``weights=`` fetches the published weights it names (``keras_preact.list_weights()``) and also
converts the checkpoints of torchvision, timm, keras.applications and the PyTorch
CIFAR ResNets exactly (``keras_preact.convert``; ``python -m keras_preact.convert``).

The package loads lazily: ``import keras_preact`` imports Keras only when a model, a layer helper
or a table is first used, so ``keras_preact.cli`` and ``keras_preact.datasets`` (standard library
and NumPy) let command lines answer ``--help`` and quiet TensorFlow's logs before it loads.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "feature_extractor": "features",
    "decode_predictions": "labels",
    "label_names": "labels",
    "use_fused_batch_norm": "layers",
    "DATASET_STATS": "preprocessing",
    "mean_std": "preprocessing",
    "preprocess_input": "preprocessing",
    "FACTORIES": "resnet",
    "MODEL_NAMES": "resnet",
    "MODELS": "resnet",
    "Architecture": "resnet",
    "ModelInfo": "resnet",
    "ResNet": "resnet",
    "architecture": "resnet",
    "get_model": "resnet",
    "resolve_model": "resnet",
    "units_per_stage": "resnet",
    "deep_graph_recursion": "saving",
    "load_model": "saving",
    "ModelStats": "summary",
    "count_macs": "summary",
    "model_stats": "summary",
    "PLACEMENTS": "units",
    "PROJECTIONS": "units",
    "SHORTCUTS": "units",
    "UNITS": "units",
    "list_weights": "weights",
}
# The named factories (keras_preact.MODELS; a test checks that the two lists agree).
FACTORY_NAMES: tuple[str, ...] = (
    *(f"ResNet{depth}V1" for depth in (20, 32, 44, 56, 110, 1202)),
    *(f"ResNet{depth}V2" for depth in (110, 164, 1001)),
    *(f"ResNet{depth}V{v}" for v in (1, 2) for depth in (18, 34, 50, 101, 152, 200)),
    *(f"Plain{depth}V1" for depth in (20, 32, 44, 56, 110, 18, 34)),
)

__all__ = [*_EXPORTS, *FACTORY_NAMES]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"keras_preact.{_EXPORTS[name]}"), name)
    elif name in FACTORY_NAMES:
        value = importlib.import_module("keras_preact.resnet").FACTORIES[name.lower()]
    else:
        raise AttributeError(f"module 'keras_preact' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
