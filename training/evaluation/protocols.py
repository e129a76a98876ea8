"""The papers' testing protocols (He et al. 2015, sec. 3.4) and ``evaluate``, which scores a network with them.

* ``center``: the shorter side resized to 256 (for a 224 crop), the central 224x224 crop;
* ``10crop``: the same resize, the four corner crops and the central one (in the order top-left,
  top-right, bottom-left, bottom-right, centre), then the same five flipped (Krizhevsky et al. 2012);
* ``multiscale``: the fully-convolutional form: the whole image with its shorter side resized to each of
  224, 256, 384, 480 and 640, and its flip, through the network (the global average pool applies the
  classifier at every position and averages).

Probabilities are averaged over the views. Sizes scale with the crop ``S``: ``round(s * S / 224)``.
Resizing is bilinear with antialiasing (as PIL); an image whose shorter side already has the size is not
resampled, so a crop is then exactly a window of it (the centre one at ``(H - S) // 2, (W - S) // 2``).
The ``center`` view is ``keras_preact.image_views``', shared with the exported ``serving_bytes`` signature.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import keras_preact
from keras_preact.command_line import UserError
from keras_preact.image_views import RESIZE, center, resize_shorter, scaled
from keras_preact.preprocessing import normalization_to_add
from training.choices import PROTOCOLS
from training.data.images.feed import decode
from training.data.images.folder import scan_eval
from training.data.images.imagenet_tfds import load_imagenet
from training.data.images.options import keras_layer_names, tfds_name
from training.run import finetune
from training.run import run_folder as rundir

SCALES = (224, 256, 384, 480, 640)
"""Shorter sides of multi-scale testing, at the reference crop of 224 (He et al. 2015, sec. 3.4)."""


def ten_crops(image: tf.Tensor, crop: int) -> tf.Tensor:
    """``(10, crop, crop, 3)``: the ``10crop`` protocol's views (order in the module docstring)."""
    image = resize_shorter(image, scaled(RESIZE, crop))
    bottom, right = tf.shape(image)[0] - crop, tf.shape(image)[1] - crop
    corners = [(0, 0), (0, right), (bottom, 0), (bottom, right), (bottom // 2, right // 2)]
    crops = tf.stack([image[top : top + crop, left : left + crop] for top, left in corners])
    crops = tf.ensure_shape(crops, [5, crop, crop, None])
    return tf.concat([crops, tf.reverse(crops, axis=[2])], axis=0)


def scale_views(image: tf.Tensor, crop: int) -> list[tf.Tensor]:
    """For ``multiscale``: per scale, ``(2, H_s, W_s, 3)``: the resized image and its flip."""
    resized = [resize_shorter(image, scaled(size, crop)) for size in SCALES]
    return [tf.stack([view, tf.reverse(view, axis=[1])]) for view in resized]


def fully_convolutional(model: Any) -> Any:
    """``model`` on images of any size (its global average pool makes it fully convolutional)."""
    inputs = keras.Input(shape=(None, None, model.inputs[0].shape[-1]), name="image")
    with keras_preact.deep_graph_recursion():
        clone = keras.models.clone_model(
            model, input_tensors=[inputs] if isinstance(model.input, list) else inputs
        )
    clone.set_weights(model.get_weights())
    return clone


def predictor(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """``images -> probabilities`` for any batch (and image) size without recompiling: on
    TensorFlow one graph of unknown sizes; elsewhere Keras' ``predict_on_batch``."""
    if keras.backend.backend() != "tensorflow":
        return lambda images: np.asarray(model.predict_on_batch(images), np.float64)
    channels = model.inputs[0].shape[-1]
    call = tf.function(
        lambda images: model(images, training=False),
        input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32)],
    )
    return lambda images: call(tf.constant(images, tf.float32)).numpy().astype(np.float64)


def probabilities(
    model: Any, source: Any, protocol: str, crop: int, batch: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """``(probabilities (N, classes), labels (N,))`` of ``protocol`` for every image of ``source`` (a
    ``training.data.images.feed.ImageSource``, in its order), averaged over the protocol's views."""
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    batch = max(1, min(batch, source.count))  # tf.data sizes its buffers by the batch asked for
    multiscale = protocol == "multiscale"
    network = predictor(fully_convolutional(model) if multiscale else model)
    views = {
        "center": lambda im: (center(im, crop),),
        "10crop": lambda im: (ten_crops(im, crop),),
        "multiscale": lambda im: tuple(scale_views(im, crop)),  # of sizes that do not batch
    }[protocol]
    ds = source.ordered().map(
        lambda payload, label: (views(decode(source.read(payload))), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    probs, labels = [], []
    for groups, label in ds.batch(1 if multiscale else batch).prefetch(2).as_numpy_iterator():
        # Each group: (images, views, H, W, 3), through the network as one batch.
        scores = [network(g.reshape(-1, *g.shape[2:])).reshape(*g.shape[:2], -1) for g in groups]
        probs.append(np.concatenate(scores, axis=1).mean(axis=1))
        labels.append(label)
    if not probs:
        raise UserError("there are no images to evaluate")
    return np.concatenate(probs), np.concatenate(labels).astype(np.int64)


def errors(
    probs: np.ndarray, labels: np.ndarray, names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Top-1 and top-5 error (fractions) of ``probs`` against ``labels``; with ``names``, also per
    class (``{name: {"images", "top1_error", "top5_error"}}``, classes without images left out).
    Top-5 counts a hit when the label is among the five highest scores (all of them when there are
    fewer than five classes)."""
    labels = np.asarray(labels, np.int64)
    k = min(5, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")
    miss1 = top[:, 0] != labels
    miss5 = ~(top[:, :k] == labels[:, None]).any(axis=1)

    def rates(rows: np.ndarray) -> dict[str, Any]:
        count = int(rows.sum())
        top1, top5 = (float(miss[rows].mean()) if count else None for miss in (miss1, miss5))
        return {"images": count, "top1_error": top1, "top5_error": top5}

    result = rates(np.ones(len(labels), bool))
    if names is not None:
        per_class = {name: labels == c for c, name in enumerate(names)}
        result["per_class"] = {name: rates(rows) for name, rows in per_class.items() if rows.any()}
    return result


def evaluate(
    model_path: Path,
    data: str,
    *,
    protocol: str = "center",
    label_names: Sequence[str] | None = None,
    preprocessing: str = "auto",
    per_class: bool = False,
    batch: int = 32,
    skip_bad_images: bool = False,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    output: Path | None = None,
    log: Callable[[str], None] = lambda line: None,
    weights: str | None = None,
) -> dict[str, Any]:
    """The errors and settings (written as JSON to ``output``) of the ``.keras`` network at
    ``model_path`` (with ``weights``: the keras-preact model it names, with those weights) on
    ``data`` (a folder: ``images.folder.scan_eval``; or ``tfds:imagenet2012``' validation split) by
    ``protocol``. ``label_names`` map class folders to outputs; ``preprocessing``: as
    ``normalization_to_add``. ``UserError`` for bad input, before the network runs."""
    if weights is not None:
        model = finetune.named(str(model_path), weights)
    else:
        if model_path.suffix == ".keras" or not model_path.is_file():
            # Checked first (missing, a folder, not a .keras archive): Keras says "File not found".
            keras_layer_names(str(model_path), option="--model")
        model = finetune.load(str(model_path), option="--model")
    has_layer = finetune.has_preprocess_layer(model)
    normalization = normalization_to_add(
        preprocessing, has_layer=has_layer, model_name=model.name if weights else model_path.name
    )
    model = finetune.with_normalization(model, normalization)
    shape = tuple(model.inputs[0].shape[1:])
    classes = model.outputs[0].shape[-1]
    if len(shape) != 3 or shape[0] is None or shape[0] != shape[1]:
        raise UserError(f"{model_path} takes {shape}: expected a square image input (S, S, 3)")
    crop = int(shape[0])
    if label_names is not None and len(label_names) != classes:
        raise UserError(f"{len(label_names)} class names for a network of {classes} outputs")
    skipped: tuple[str, ...] = ()
    if tfds_name(data) is not None:
        _, source, names, origin = load_imagenet(data_dir, manual_dir)
        if label_names is not None and tuple(label_names) != names:
            raise UserError("--labels differ from imagenet2012's class names")
    else:
        found = scan_eval(data, label_names, skip_bad_images=skip_bad_images, log=log)
        if found.notes:
            log(f"data: {found.summary()}")
        names, source, skipped = found.class_names, found.val, found.skipped
        origin = f"{found.root} ({found.val_source})"
    if len(names) != classes:
        raise UserError(
            f"{origin} has {len(names)} classes but the network has {classes} outputs: pass the "
            "network's class names with --labels"
        )
    probs, labels = probabilities(model, source, protocol, crop, batch)
    result: dict[str, Any] = {
        "model": str(model_path),
        "weights": weights,
        "data": origin,
        "protocol": protocol,
        "image_size": crop,
        "resize": scaled(RESIZE, crop) if protocol != "multiscale" else None,
        "scales": [scaled(s, crop) for s in SCALES] if protocol == "multiscale" else None,
        "classes": classes,
        "preprocessing": normalization or ("model" if has_layer else "none"),
        "skipped_images": list(skipped),
        **errors(probs, labels, names if per_class else None),
    }
    if output is not None:
        rundir.write_json(output, result)
    return result
