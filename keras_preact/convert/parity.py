"""Parity: the converted network against the source framework running the same checkpoint.

Both run on real images, the embedded CIFAR-10 sample's test images, resized (bilinear, with
Pillow) to the network's input size; both are given the same normalised pixels, in the layout
each expects, and their logits are compared.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from keras_preact.convert.sources import SourceUnavailable, source_network
from keras_preact.datasets import load_sample
from keras_preact.preprocessing import preprocess_input

TOLERANCE = 1e-4
"""Largest |Δ logit| accepted, relative to the largest |logit| (at least 1) of the source."""


@dataclasses.dataclass(frozen=True)
class Parity:
    """Largest difference of the logits over ``images`` sample images of ``size``."""

    max_abs_diff: float
    max_abs_logit: float
    images: int
    size: tuple[int, int]
    against: str

    @property
    def tolerance(self) -> float:
        """``TOLERANCE`` scaled to the logits (float32 rounding grows with them)."""
        return TOLERANCE * max(1.0, self.max_abs_logit)

    @property
    def passed(self) -> bool:
        """Whether the difference is within the tolerance."""
        return self.max_abs_diff <= self.tolerance

    def __str__(self) -> str:
        h, w = self.size
        return (
            f"max |Δ logits| {self.max_abs_diff:.2e} (logits up to {self.max_abs_logit:.2f}) on "
            f"{self.images} sample images at {h}×{w} against {self.against}"
        )


def sample_images(count: int, size: tuple[int, int]) -> np.ndarray:
    """The first ``count`` test images of the embedded sample, float32 pixels (0-255) at ``size``."""
    from PIL import Image  # optional: only to resize the sample

    images = load_sample().x_test[:count]
    h, w = size
    if images.shape[1:3] != (h, w):
        images = np.stack(
            [np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR)) for img in images]
        )
    return images.astype(np.float32)


def measure_parity(conversion, count: int = 8) -> Parity:
    """Run the conversion's model and the source on ``count`` sample images; compare logits.

    Raises ``SourceUnavailable`` where the source framework is not installed, defines no
    network for the layout, or the model does not carry the checkpoint's classifier; a
    ``ValueError`` where the source itself computes NaN or infinite logits (a broken
    checkpoint, not a failed conversion).
    """
    if conversion.loaded.classifier != "loaded":
        raise SourceUnavailable("the model does not carry the checkpoint's classifier")
    model = conversion.model
    size = tuple(model.input_shape[1:3])
    if None in size:
        size = (224, 224) if conversion.source.family == "imagenet" else (32, 32)
    run_source, against = source_network(conversion.source, conversion.checkpoint, size)
    pixels = sample_images(count, size)
    stats = conversion.preprocessing or conversion.source.preprocessing or "imagenet"
    normalised = preprocess_input(pixels, stats)
    logits = keras.Model(model.input, model.get_layer("logits").output)
    ours = np.asarray(logits(pixels if conversion.preprocessing else normalised, training=False))
    theirs = np.asarray(run_source(normalised))
    if not np.isfinite(theirs).all():
        raise ValueError(
            f"{against} itself computes non-finite logits from {conversion.checkpoint.path!r} on "
            "the sample images: the checkpoint is broken (its values overflow), not the conversion"
        )
    return Parity(
        max_abs_diff=float(np.abs(ours - theirs).max()),
        max_abs_logit=float(np.abs(theirs).max()),
        images=count,
        size=size,
        against=against,
    )
