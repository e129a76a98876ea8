"""Replaced by :mod:`keras_preact.fused_batch_norm`; kept so that ``from keras_preact.layers
import ...`` still works."""

from keras_preact.fused_batch_norm import use_fused_batch_norm, uses_fused_batch_norm

__all__ = ["use_fused_batch_norm", "uses_fused_batch_norm"]
