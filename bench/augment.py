"""The v1 paper's scale augmentation as keras-preact defines it (``training.feed_images``), repeated
here for the PyTorch side, which never imports TensorFlow: tests/bench checks they are the same, and
the feed stage measures only while they are."""

from __future__ import annotations

SCALE_RANGE = (256, 480)
"""Shorter side of the image before the crop, at the reference crop of 224."""
REFERENCE_CROP = 224
PCA_EIGENVALUES = (0.2175, 0.0188, 0.0045)
PCA_EIGENVECTORS = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
LIGHTING_STD = 0.1


def scale_range(image_size: int) -> tuple[int, int]:
    """The shorter-side range at crop ``image_size`` (keras-preact's ``Augment.make``: [256, 480]
    at 224, scaled with the crop, never below the crop)."""
    low, high = (max(1, round(s * image_size / REFERENCE_CROP)) for s in SCALE_RANGE)
    return max(low, image_size), max(high, image_size)


def same_as_keras_preact(image_size: int) -> bool:
    """Whether keras-preact's scale augmentation at ``image_size`` still has these constants."""
    from training import feed_images

    augment = feed_images.Augment.make(image_size, "scale", lighting=True)
    return (
        augment.scale_range == scale_range(image_size)
        and augment.lighting == LIGHTING_STD
        and feed_images.PCA_EIGENVALUES == PCA_EIGENVALUES
        and feed_images.PCA_EIGENVECTORS == PCA_EIGENVECTORS
    )
