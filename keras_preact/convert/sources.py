"""The source frameworks, where installed: their networks run the checkpoint for the parity check.

torchvision's and timm's model code is plain Python over torch, but ``import torchvision`` also
loads torchvision's compiled operators, which fail to load beside a torch build they were not
compiled for ("operator torchvision::nms does not exist", e.g. PyPI's torchvision next to a CPU
torch). ``import_torchvision_models`` then imports ``torchvision`` as a bare namespace package,
without its ``__init__`` (which loads those operators), so that ``torchvision.models`` and timm,
which need none of them, still import. Nothing here is needed to convert a checkpoint; it only
measures what the converted network computes against what the source computes.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
import types
from collections.abc import Callable

import numpy as np

from keras_preact.convert.layout import SourceArchitecture
from keras_preact.convert.readers import Checkpoint


class SourceUnavailable(Exception):
    """The source framework (or its network for this checkpoint) is not installed here."""


def import_torchvision_models() -> types.ModuleType:
    """``torchvision.models``, also where torchvision's compiled operators do not load.

    Tries a normal import first; if torchvision's ``__init__`` fails (its C++ operators do not
    match the installed torch), imports ``torchvision`` as a namespace package over the same
    directory, skipping that ``__init__``: the model definitions need no compiled operator.
    Raises ``SourceUnavailable`` if torch or torchvision is not installed.
    """
    try:
        import torch  # noqa: F401
    except ImportError:
        raise SourceUnavailable("torch is not installed") from None
    try:
        import torchvision.models as models  # optional: only to measure parity

        return models
    except ImportError as e:
        if importlib.util.find_spec("torchvision") is None:
            raise SourceUnavailable("torchvision is not installed") from None
        reason = e
    except RuntimeError as e:  # "operator torchvision::nms does not exist"
        reason = e
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        raise SourceUnavailable(f"torchvision does not import: {reason}")
    package = types.ModuleType("torchvision")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    package.__file__ = spec.origin
    package.__version__ = importlib.metadata.version("torchvision")
    sys.modules["torchvision"] = package
    return importlib.import_module("torchvision.models")


def import_timm() -> types.ModuleType:
    """``timm`` (through ``import_torchvision_models``, which timm imports torchvision for)."""
    import_torchvision_models()
    try:
        import timm  # optional: only to measure parity
    except ImportError as e:
        raise SourceUnavailable(f"timm is not installed ({e})") from None
    return timm


def version(package: str) -> str:
    """``"torchvision 0.28.0"``."""
    try:
        return f"{package} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return package


def source_network(
    source: SourceArchitecture, checkpoint: Checkpoint, size: tuple[int, int] = (224, 224)
) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """The source framework's network holding the checkpoint, and its name with version.

    ``size``: the height and width of the images it will be given (keras.applications builds
    for one size).

    The network maps RGB images normalised as the source expects (NHWC float32) to logits.
    Raises ``SourceUnavailable`` where the framework is not installed or defines no network
    for this layout (the PyTorch CIFAR layouts are defined by no installable package).
    """
    if source.layout == "torchvision":
        models = import_torchvision_models()
        net = getattr(models, f"resnet{source.depth}")(num_classes=source.classes)
        return _torch_runner(net, checkpoint.tensors), version("torchvision")
    if source.layout == "timm":
        timm = import_timm()
        net = timm.create_model(
            f"resnetv2_{source.depth}", pretrained=False, num_classes=source.classes
        )
        return _torch_runner(net, checkpoint.tensors), version("timm")
    if source.layout == "keras.applications":
        import keras  # convert imports without Keras (its --help)

        build = getattr(keras.applications, f"ResNet{source.depth}")
        net = build(
            weights=checkpoint.path,
            classes=source.classes,
            input_shape=(*size, 3),
            classifier_activation=None,
        )

        def run(images: np.ndarray) -> np.ndarray:
            # keras.applications takes BGR ("caffe" mode); the images are RGB.
            return np.asarray(net(images[..., ::-1], training=False))

        return run, f"keras.applications {keras.__version__}"
    raise SourceUnavailable(f"no installable package defines the {source.layout} layout")


def _torch_runner(net, tensors) -> Callable[[np.ndarray], np.ndarray]:
    import torch  # optional: only to measure parity

    state = {k: torch.from_numpy(np.asarray(v)) for k, v in tensors.items()}
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise SourceUnavailable(
            f"the source's network does not take the checkpoint: {first}"
        ) from None
    net.eval()

    def run(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
            return net(x).numpy()

    return run
