"""Loading and saving: the deepest graphs' recursion limit, ``load_model``, and ``weights=`` files.

``weights=`` takes keras-preact's own files (``.weights.h5``, ``.keras``) and the checkpoints
``keras_preact.convert`` understands (torchvision, timm, keras.applications, PyTorch CIFAR
ResNets), told apart by their content.

Files written by keras-preact hold only Keras' own layers, so they load with
``keras.saving.load_model(path, safe_mode=True)`` wherever Keras is installed, without this package
(ResNet-1001 and -1202 need ``sys.setrecursionlimit`` raised there, as ``deep_graph_recursion``
does). ``keras_preact.load_model`` raises the limit itself and turns the fused batch-norm training
kernel back on.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import keras
import numpy as np

import keras_preact.convert.plan as planning
from keras_preact import legacy  # noqa: F401  (files saved by keras-preact 0.1 name its layers)
from keras_preact.convert.readers import keras3_applications_depth
from keras_preact.fused_batch_norm import use_fused_batch_norm

# Frames Keras needs per layer on the longest path when it walks a functional graph recursively.
_RECURSION_HEADROOM = 2000


@contextmanager
def deep_graph_recursion(layers_deep: int = 20000) -> Iterator[None]:
    """Let Keras walk graphs of ``layers_deep`` layers (it recurses once per layer on a path).

    ResNet-1001 and ResNet-1202 have more than 3,000 layers on their longest path, past Python's
    default limit of 1,000 frames. The limit is raised only inside the ``with`` block.
    """
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, layers_deep + _RECURSION_HEADROOM))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def load_model(path: str | os.PathLike, **kwargs) -> keras.Model:
    """``keras.saving.load_model`` that also loads the deepest networks (ResNet-1001, -1202).

    Keyword arguments (``safe_mode``, ``compile``, ``custom_objects``) are passed through. On the
    TensorFlow backend the batch norms train with the fused kernel, as in a freshly built model.

    Raises:
        ValueError: the file is missing, a directory, or a ``.keras`` file that is not one
            (empty, truncated, text, a zip archive without ``config.json``), in one line.
    """
    check_model_file(path)
    with deep_graph_recursion():
        model = keras.saving.load_model(path, **kwargs)
    return use_fused_batch_norm(model)


def check_model_file(path: str | os.PathLike) -> None:
    """A ValueError saying what is wrong unless ``path`` is a file and, if it ends in ``.keras``,
    a zip archive with a model's ``config.json`` (Keras says "File not found" for all of them)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory, not a model file")
    if not os.path.isfile(path):
        raise ValueError(f"model file not found: {path!r}")
    if not path.endswith(".keras"):
        return
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path!r} is not a .keras model file: the file is empty")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path!r} is not a .keras model file: not a zip archive (truncated, or another kind "
            "of file)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{path!r} is not a .keras model file: {e}") from None
    if "config.json" not in names:
        raise ValueError(f"{path!r} is a zip archive without config.json, not a .keras model file")


def prepare_weights(
    path: str | os.PathLike,
    architecture: Any,
    *,
    include_top: bool,
    classes: int,
    classes_given: bool,
    model_name: str | None = None,
) -> Callable[[keras.Model], Any]:
    """What loads ``weights=path`` into the model about to be built from ``architecture``.

    keras-preact's own files load as they are; a checkpoint of another library is read, and
    checked against the architecture and head, now, before the model is built (a ValueError
    names the arguments it needs); the returned function then converts it into the model.
    """
    path = os.fspath(path)
    if _is_keras_file(path):
        return lambda model: load_weights_file(model, path)
    plan = planning.plan_checkpoint(
        path,
        architecture,
        include_top=include_top,
        classes=classes,
        classes_given=classes_given,
        model_name=model_name,
    )
    return plan.load_into


def _is_keras_file(path: str) -> bool:
    """``.keras``, or a ``.weights.h5`` of a keras-preact model (not keras.applications' weights,
    in the legacy layout Keras caches them in or saved by Keras 3: checkpoints to convert)."""
    if path.endswith(".keras"):
        return True
    if not path.endswith(".weights.h5"):
        return False
    import h5py  # optional until an HDF5 file is read, as in keras_preact.convert.readers

    try:
        with h5py.File(path, "r") as f:
            legacy = "layer_names" in f.attrs or "model_weights" in f
            return not legacy and keras3_applications_depth(f) is None
    except OSError:
        return True  # not readable as HDF5: Keras' loader reports it


def load_weights_file(model: keras.Model, path: str | os.PathLike) -> None:
    """Load ``.weights.h5`` or ``.keras`` weights into ``model`` after checking they fit.

    Raises:
        ValueError: the file is not a Keras weights/model file, or its layers or shapes do not
            match ``model`` (the message names the file and the model).
    """
    path = os.fspath(path)
    if path.endswith(".keras"):
        check_model_file(path)
        try:
            source = load_model(path, compile=False)
        except Exception as e:  # Keras reports a damaged archive in many exception types
            raise ValueError(f"cannot read model file {path!r}: {_first_line(e)}") from None
        _copy_matching(source, model, path)
        _check_finite(model, path)
        return
    if not path.endswith(".weights.h5"):
        raise ValueError(
            f"weights file {path!r} must end in .weights.h5 (model.save_weights) or .keras"
        )
    # A file that does not fit makes Keras warn once per layer before it raises; the user needs
    # only the one line below. The warnings of a load that succeeds are passed on.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except Exception as e:
            # Keras reports mismatches in several exception types.
            raise ValueError(
                f"weights file {path!r} does not fit {model.name}: {_first_line(e)}"
            ) from None
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    _check_finite(model, path)


def _check_finite(model: keras.Model, path: str) -> None:
    """Refuse weights with NaN or infinite values (say of a run that diverged), naming the first."""
    for weight in model.weights:
        bad = int(np.count_nonzero(~np.isfinite(keras.ops.convert_to_numpy(weight))))
        if bad:
            raise ValueError(
                f"weights file {path!r}: {weight.path} has {bad} NaN or infinite value"
                f"{'s' if bad > 1 else ''} (of {int(np.prod(weight.shape))}): the weights are broken"
            )


def _first_line(error: BaseException) -> str:
    """Keras' message in one line: for weights of other shapes, how many layers and the first
    one's shapes (Keras prints the model's whole array on further lines)."""
    text = str(error).strip()
    mismatch = re.search(
        r"A total of (\d+) objects could not be loaded.*?name=([^,>]+).*?"
        r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))",
        text,
        re.DOTALL,
    )
    if mismatch:
        count, layer, model_shape, file_shape = mismatch.groups()
        return (
            f"{count} layers differ, the first {layer} with shape {file_shape} in the file, "
            f"{model_shape} in the model (weights of another depth or width)"
        )
    return text.splitlines()[0] if text else type(error).__name__


def _copy_matching(source: keras.Model, target: keras.Model, path: str) -> None:
    """Copy weights layer by layer, by name, refusing any difference in names or shapes."""
    src = {layer.name: layer for layer in source.layers if layer.weights}
    dst = [layer for layer in target.layers if layer.weights]
    missing = [layer.name for layer in dst if layer.name not in src]
    if missing or len(src) != len(dst):
        extra = sorted(set(src) - {layer.name for layer in dst})
        raise ValueError(
            f"weights file {path!r} does not fit {target.name}: layers missing from the file "
            f"{missing[:5]}, layers only in the file {extra[:5]}"
        )
    for layer in dst:
        values = src[layer.name].get_weights()
        shapes = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != shapes:
            raise ValueError(
                f"weights file {path!r} does not fit {target.name}: layer {layer.name!r} has "
                f"shapes {[v.shape for v in values]} in the file, {shapes} in the model"
            )
        layer.set_weights(values)
