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
or a table is first used, so ``keras_preact.command_line`` and ``keras_preact.native_logs``
(standard library) and ``keras_preact.datasets`` (standard library and NumPy) let command lines
answer ``--help`` and quiet TensorFlow's logs before it loads. Type checkers and IDEs see every
public name, with its signature, through the imports below that only they read.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The named factories (defined in keras_preact.factories), one per network of the catalogue: plain
# data, so that this module does not import Keras.
from keras_preact.catalogue import FACTORY_NAMES

__version__ = "0.2.0"

# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "feature_extractor": "features",
    "decode_predictions": "labels",
    "label_names": "labels",
    "use_fused_batch_norm": "fused_batch_norm",
    "DATASET_STATS": "preprocessing",
    "mean_std": "preprocessing",
    "preprocess_input": "preprocessing",
    "FACTORIES": "factories",
    "MODEL_NAMES": "catalogue",
    "MODELS": "resnet",
    "Architecture": "resnet",
    "ModelInfo": "resnet",
    "ResNet": "resnet",
    "architecture": "resnet",
    "get_model": "resnet",
    "resolve_model": "resnet",
    "units_per_stage": "catalogue",
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
__all__ = list(_EXPORTS) + list(FACTORY_NAMES)

# What type checkers and IDEs see (``X as X``: re-exported); at run time __getattr__ imports on
# first use. isort would split these into one statement per name.
if TYPE_CHECKING:
    # isort: off
    from keras_preact.catalogue import (
        MODEL_NAMES as MODEL_NAMES,
        units_per_stage as units_per_stage,
    )
    from keras_preact.factories import (
        FACTORIES as FACTORIES,
        Plain110V1 as Plain110V1,
        Plain18V1 as Plain18V1,
        Plain20V1 as Plain20V1,
        Plain32V1 as Plain32V1,
        Plain34V1 as Plain34V1,
        Plain44V1 as Plain44V1,
        Plain56V1 as Plain56V1,
        ResNet1001V2 as ResNet1001V2,
        ResNet101V1 as ResNet101V1,
        ResNet101V2 as ResNet101V2,
        ResNet110V1 as ResNet110V1,
        ResNet110V2 as ResNet110V2,
        ResNet1202V1 as ResNet1202V1,
        ResNet152V1 as ResNet152V1,
        ResNet152V2 as ResNet152V2,
        ResNet164V2 as ResNet164V2,
        ResNet18V1 as ResNet18V1,
        ResNet18V2 as ResNet18V2,
        ResNet200V1 as ResNet200V1,
        ResNet200V2 as ResNet200V2,
        ResNet20V1 as ResNet20V1,
        ResNet32V1 as ResNet32V1,
        ResNet34V1 as ResNet34V1,
        ResNet34V2 as ResNet34V2,
        ResNet44V1 as ResNet44V1,
        ResNet50V1 as ResNet50V1,
        ResNet50V2 as ResNet50V2,
        ResNet56V1 as ResNet56V1,
    )
    from keras_preact.features import (
        feature_extractor as feature_extractor,
    )
    from keras_preact.labels import (
        decode_predictions as decode_predictions,
        label_names as label_names,
    )
    from keras_preact.fused_batch_norm import (
        use_fused_batch_norm as use_fused_batch_norm,
    )
    from keras_preact.preprocessing import (
        DATASET_STATS as DATASET_STATS,
        mean_std as mean_std,
        preprocess_input as preprocess_input,
    )
    from keras_preact.resnet import (
        Architecture as Architecture,
        MODELS as MODELS,
        ModelInfo as ModelInfo,
        ResNet as ResNet,
        architecture as architecture,
        get_model as get_model,
        resolve_model as resolve_model,
    )
    from keras_preact.saving import (
        deep_graph_recursion as deep_graph_recursion,
        load_model as load_model,
    )
    from keras_preact.summary import (
        ModelStats as ModelStats,
        count_macs as count_macs,
        model_stats as model_stats,
    )
    from keras_preact.units import (
        PLACEMENTS as PLACEMENTS,
        PROJECTIONS as PROJECTIONS,
        SHORTCUTS as SHORTCUTS,
        UNITS as UNITS,
    )
    from keras_preact.weights import (
        list_weights as list_weights,
    )
    # isort: on


if not TYPE_CHECKING:  # hidden from type checkers, so that they report a misspelt name

    def __getattr__(name: str) -> Any:
        if name in _EXPORTS:
            value = getattr(importlib.import_module(f"keras_preact.{_EXPORTS[name]}"), name)
        elif name in FACTORY_NAMES:
            value = getattr(importlib.import_module("keras_preact.factories"), name)
        else:
            raise AttributeError(f"module 'keras_preact' has no attribute {name!r}")
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
