"""The parameters of the v1 paper's ImageNet augmentation, without TensorFlow: ``images.feed`` augments
with them, and the benchmark's PyTorch side (``bench.torch_images``) builds torchvision's version from them.
"""

from __future__ import annotations

from keras_preact.image_views import scaled

SCALE_RANGE = (256, 480)
"""Shorter-side range of the ``scale`` augmentation at the reference crop of 224 (He et al. 2015,
sec. 3.4)."""

# AlexNet's PCA colour augmentation, RGB, in [0, 1] pixel units (the eigen-decomposition of ImageNet's
# pixel covariance, as in fb.resnet.torch); the noise is scaled by 255 for raw pixels.
PCA_EIGENVALUES = (0.2175, 0.0188, 0.0045)
PCA_EIGENVECTORS = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
LIGHTING_STD = 0.1
"""Standard deviation of AlexNet's per-image PCA coefficients."""


def scale_range(image_size: int) -> tuple[int, int]:
    """The shorter-side range at crop ``image_size``: ``SCALE_RANGE`` scaled with the crop, never
    below the crop."""
    low, high = (scaled(s, image_size) for s in SCALE_RANGE)
    return max(low, image_size), max(high, image_size)
