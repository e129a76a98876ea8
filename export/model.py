"""Load a ``.keras`` file and make the float32, raw-pixel inference model every artifact comes from."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras

import keras_preact
from keras_preact.command_line import UserError
from keras_preact.preprocessing import PREPROCESS_LAYER, normalization_layer, normalization_to_add


@dataclasses.dataclass(frozen=True)
class InferenceModel:
    """The model to export, plus what the export needs to know about it.

    Attributes:
        model: float32 Keras model taking raw ``[0, 255]`` float32 pixels ``(N, H, W, 3)`` and
            returning ``(N, classes)`` probabilities.
        image_size: ``(H, W)`` of the model input.
        classes: number of output classes.
        source_dtype_policy: dtype policy the loaded model was built with (e.g. ``mixed_float16``).
        preprocessing: where normalisation comes from: ``"model"`` (its own layer), a dataset name
            (added in front of it by the export) or ``"none"``.
        output: what the source model outputs: ``"probabilities"`` (it ends in a softmax) or
            ``"logits"`` (it ends in a linear layer; the export added the softmax).
    """

    model: keras.Model
    image_size: tuple[int, int]
    classes: int
    source_dtype_policy: str
    preprocessing: str
    output: str = "probabilities"


def load_keras_model(path: str | Path) -> keras.Model:
    """Load a Keras model file (``.keras``, or legacy ``.h5``) without its optimizer state.

    Raises:
        UserError: the file is not a loadable Keras model.
    """
    path = Path(path)
    try:
        # keras_preact.load_model registers the package's layers and lifts the recursion limit
        # for the 1,000-layer networks.
        model = keras_preact.load_model(path, compile=False)
    except Exception as e:  # any loader failure means "not a usable model file"
        raise UserError(f"cannot load Keras model {path}: {type(e).__name__}: {e}") from None
    if not isinstance(model, keras.Model):
        raise UserError(f"{path} holds a {type(model).__name__}, not a Keras model")
    return model


def prepare_inference_model(model: keras.Model, preprocessing: str = "auto") -> InferenceModel:
    """Make the float32 model that takes raw pixels, the single source of every exported artifact.

    Args:
        model: a classifier with one ``(H, W, 3)`` channels-last image input and ``(classes,)``
            output, e.g. from :func:`load_keras_model`.
        preprocessing: ``"auto"`` (default) uses the model's own ``preprocess`` layer and fails
            when it has none; ``"cifar10"``, ``"cifar100"`` or ``"imagenet"`` put that dataset's
            normalisation in front of a model without one; ``"none"`` exports the model as is
            (it already takes raw pixels).

    A model must be a classifier: one that ends in a softmax (its outputs are served as they are)
    or in a linear layer, such as ``classifier_activation=None`` (its outputs are logits: a
    softmax is added, and :attr:`InferenceModel.output` says so). A feature extractor
    (``include_top=False``) or a model that ends in another activation is refused.

    Raises:
        UserError: unsupported model shape, a model that is not a classifier, or a preprocessing
            choice that does not fit the model.
    """
    if keras.backend.backend() != "tensorflow":
        raise UserError(
            f"export needs Keras' TensorFlow backend, not {keras.backend.backend()!r}; run it "
            "with KERAS_BACKEND=tensorflow"
        )
    image_size, classes = _check_io(model)
    output = classifier_output(model)
    source_policy = _dtype_policy_name(model)
    float_model = _as_float32(model) if _needs_float32_clone(model) else model

    has_layer = any(layer.name == PREPROCESS_LAYER for layer in model.layers)
    dataset = normalization_to_add(preprocessing, has_layer=has_layer, model_name=model.name)
    if dataset is not None:
        float_model = _with_normalization(float_model, dataset)
    origin = dataset or ("model" if has_layer else "none")
    if output == "logits":
        float_model = _with_softmax(float_model)
    return InferenceModel(float_model, image_size, classes, source_policy, origin, output)


def classifier_output(model: keras.Model) -> str:
    """``"probabilities"`` or ``"logits"``: what the layer that makes ``model``'s output says it
    outputs (a softmax, or a linear layer).

    Raises:
        UserError: the model ends in a pooling or flattening layer (a feature extractor, built with
            ``include_top=False``) or in another activation.
    """
    layer = model.outputs[0]._keras_history.operation
    while isinstance(layer, keras.Model):  # a model wrapped in another: its own last layer
        layer = layer.outputs[0]._keras_history.operation
    features = (
        keras.layers.GlobalAveragePooling2D,
        keras.layers.GlobalMaxPooling2D,
        keras.layers.Flatten,
    )
    if isinstance(layer, features):
        raise UserError(
            f"model {model.name!r} ends in its {type(layer).__name__} layer {layer.name!r}: it is a "
            "feature extractor (include_top=False), not a classifier; export serves class "
            "probabilities, so export a model with a classification head (include_top=True)"
        )
    if isinstance(layer, keras.layers.Softmax):
        return "probabilities"
    activation = getattr(getattr(layer, "activation", None), "__name__", None)
    if activation == "softmax":
        return "probabilities"
    if activation == "linear":
        return "logits"
    if activation is not None:
        raise UserError(
            f"model {model.name!r} ends in layer {layer.name!r} with activation {activation!r}; "
            "export serves softmax class probabilities: build the model with "
            "classifier_activation='softmax' (or None for logits, to which export adds the softmax)"
        )
    # Another kind of layer: taken for probabilities, which the export checks on real images
    # (export.pipeline).
    return "probabilities"


def _check_io(model: keras.Model) -> tuple[tuple[int, int], int]:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UserError(
            f"model {model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} "
            "outputs; export needs a classifier with one image input and one output"
        )
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3 or shape[1] is None or shape[2] is None:
        raise UserError(
            f"model {model.name!r} takes input of shape {shape}; export needs channels-last "
            "RGB images of a fixed size, (None, H, W, 3)"
        )
    out = tuple(model.outputs[0].shape)
    if len(out) != 2 or out[-1] is None:
        raise UserError(
            f"model {model.name!r} outputs shape {out}; export needs class scores (None, classes)"
            " (build it with include_top=True)"
        )
    return (int(shape[1]), int(shape[2])), int(out[-1])


def _all_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def _dtype_policy_name(model: keras.Model) -> str:
    names = {layer.dtype_policy.name for layer in _all_layers(model)}
    mixed = sorted(n for n in names if n != "float32")
    return mixed[0] if mixed else "float32"


def _needs_float32_clone(model: keras.Model) -> bool:
    return any(
        layer.dtype_policy.compute_dtype != "float32"
        or layer.dtype_policy.variable_dtype != "float32"
        for layer in _all_layers(model)
    )


def _as_float32(model: keras.Model) -> keras.Model:
    """Rebuild a mixed-precision model with float32 layers and the same (float32) weights."""

    def float32_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    with keras_preact.deep_graph_recursion():
        clone = keras.models.clone_model(model, clone_function=float32_layer, recursive=True)
    clone.set_weights(model.get_weights())
    return clone


def _with_softmax(model: keras.Model) -> keras.Model:
    inputs = keras.Input(model.inputs[0].shape[1:], name="images")
    outputs = keras.layers.Softmax(name="softmax_added_by_export")(model(inputs))
    return keras.Model(inputs, outputs, name=model.name)


def _with_normalization(model: keras.Model, dataset: str) -> keras.Model:
    inputs = keras.Input(model.inputs[0].shape[1:], name="images")
    outputs = model(normalization_layer(dataset)(inputs))
    return keras.Model(inputs, outputs, name=model.name)
