"""Loading a local weights file into a freshly built model, with errors that say what is wrong."""

from __future__ import annotations

import os

import keras


def load_weights_file(model: keras.Model, path: str | os.PathLike) -> None:
    """Load ``.weights.h5`` or ``.keras`` weights into ``model`` after checking they fit.

    Raises:
        ValueError: the file is not a Keras weights/model file, or its layers or shapes do not
            match ``model`` (the message names the file and the model).
    """
    path = os.fspath(path)
    if path.endswith(".keras"):
        from keras_preact.resnet import load_model  # deep models need the raised recursion limit

        try:
            source = load_model(path, compile=False)
        except Exception as e:
            raise ValueError(f"cannot read model file {path!r}: {e}") from None
        _copy_matching(source, model, path)
        return
    if not path.endswith(".weights.h5"):
        raise ValueError(
            f"weights file {path!r} must end in .weights.h5 (model.save_weights) or .keras"
        )
    try:
        model.load_weights(path)
    except Exception as e:
        # Keras reports mismatches in several exception types; the user needs one line.
        raise ValueError(f"weights file {path!r} does not fit {model.name}: {e}") from None


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
