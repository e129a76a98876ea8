"""keras-preact: the residual networks of He et al. (2015, 2016) for Keras 3.

>>> import keras_preact
>>> model = keras_preact.ResNet164V2(weights=None)          # doctest: +SKIP
>>> keras_preact.get_model("resnet20v1", classes=100)        # doctest: +SKIP
>>> keras_preact.ResNet(110, version="v1", shortcut="scaling")  # the v2 paper's ablations
>>> keras_preact.Plain56V1()                                  # the v1 paper's plain network
>>> keras_preact.ResNet50V1(weights="resnet50-0676ba61.pth", bottleneck_stride="3x3")  # doctest: +SKIP

``weights=`` also converts the checkpoints of torchvision, timm, keras.applications and the PyTorch
CIFAR ResNets exactly (``keras_preact.convert``; ``python -m keras_preact.convert``).
"""

from keras_preact.layers import use_fused_batch_norm
from keras_preact.preprocessing import DATASET_STATS, mean_std, preprocess_input
from keras_preact.resnet import (
    FACTORIES,
    MODEL_NAMES,
    MODELS,
    Architecture,
    ModelInfo,
    ResNet,
    architecture,
    get_model,
    resolve_model,
    units_per_stage,
)
from keras_preact.saving import deep_graph_recursion, load_model
from keras_preact.summary import ModelStats, count_macs, model_stats
from keras_preact.units import PLACEMENTS, PROJECTIONS, SHORTCUTS, UNITS

__version__ = "0.1.0"

ResNet20V1 = FACTORIES["resnet20v1"]
ResNet32V1 = FACTORIES["resnet32v1"]
ResNet44V1 = FACTORIES["resnet44v1"]
ResNet56V1 = FACTORIES["resnet56v1"]
ResNet110V1 = FACTORIES["resnet110v1"]
ResNet1202V1 = FACTORIES["resnet1202v1"]
ResNet110V2 = FACTORIES["resnet110v2"]
ResNet164V2 = FACTORIES["resnet164v2"]
ResNet1001V2 = FACTORIES["resnet1001v2"]
ResNet18V1 = FACTORIES["resnet18v1"]
ResNet34V1 = FACTORIES["resnet34v1"]
ResNet50V1 = FACTORIES["resnet50v1"]
ResNet101V1 = FACTORIES["resnet101v1"]
ResNet152V1 = FACTORIES["resnet152v1"]
ResNet200V1 = FACTORIES["resnet200v1"]
ResNet18V2 = FACTORIES["resnet18v2"]
ResNet34V2 = FACTORIES["resnet34v2"]
ResNet50V2 = FACTORIES["resnet50v2"]
ResNet101V2 = FACTORIES["resnet101v2"]
ResNet152V2 = FACTORIES["resnet152v2"]
ResNet200V2 = FACTORIES["resnet200v2"]
Plain20V1 = FACTORIES["plain20v1"]
Plain32V1 = FACTORIES["plain32v1"]
Plain44V1 = FACTORIES["plain44v1"]
Plain56V1 = FACTORIES["plain56v1"]
Plain110V1 = FACTORIES["plain110v1"]
Plain18V1 = FACTORIES["plain18v1"]
Plain34V1 = FACTORIES["plain34v1"]

__all__ = [
    "DATASET_STATS",
    "Architecture",
    "MODELS",
    "MODEL_NAMES",
    "PLACEMENTS",
    "PROJECTIONS",
    "SHORTCUTS",
    "UNITS",
    "ModelInfo",
    "ModelStats",
    "ResNet",
    "architecture",
    "count_macs",
    "deep_graph_recursion",
    "get_model",
    "load_model",
    "mean_std",
    "model_stats",
    "preprocess_input",
    "resolve_model",
    "units_per_stage",
    "use_fused_batch_norm",
    *(info.name for info in MODELS.values()),
]
