"""The fused batch-norm training step, a training-time choice on plain Keras layers.

keras-preact builds its networks from Keras' own layers only, so a saved ``.keras`` file loads
anywhere Keras does. What Keras lacks is speed in one place: it computes batch statistics and the
normalisation as separate ``keras.ops`` on every backend. XLA fuses them on JAX, but TensorFlow
(which does not use XLA on the CPU) runs each as its own op: about a fifth of a ResNet-20 training
step on two CPU cores. ``use_fused_batch_norm`` gives a model's ``keras.layers.BatchNormalization``
layers a training-mode forward pass through TensorFlow's fused batch-norm kernel (one op forward,
one backward; oneDNN also fuses the ReLU after it), updating the moving statistics exactly as Keras
does (biased batch variance, same momentum). The layers stay ``keras.layers.BatchNormalization``:
their configuration, weights and saved files are unchanged.
"""

from __future__ import annotations

import types
from collections.abc import Callable

import keras
from keras import ops

FUSED_INPUT_DTYPES = ("float32", "bfloat16")


def use_fused_batch_norm(model: keras.Model, enabled: bool = True) -> keras.Model:
    """Train ``model``'s batch norms with TensorFlow's fused kernel (``enabled=False``: Keras' path).

    Applies to every ``keras.layers.BatchNormalization`` in ``model`` (nested models included) and
    only on the TensorFlow backend; elsewhere, and for inference, masks, synchronised
    (cross-replica) statistics, renormalisation or inputs that are not 4-D, Keras' own code runs.
    Builders and ``keras_preact.load_model`` call it; returns ``model``.
    """
    for layer in _all_layers(model):
        is_batch_norm = isinstance(layer, keras.layers.BatchNormalization)
        if not is_batch_norm or type(layer).call is not keras.layers.BatchNormalization.call:
            continue  # not a batch norm, or one whose own call must run
        if enabled:
            layer.call = types.MethodType(_fused_call, layer)
        else:
            vars(layer).pop("call", None)
    return model


def uses_fused_batch_norm(layer: keras.layers.Layer) -> bool:
    """Whether ``layer`` trains with the fused kernel (see ``use_fused_batch_norm``)."""
    call = vars(layer).get("call")
    return getattr(call, "__func__", None) is _fused_call


def _all_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def _fused_call(self: keras.layers.BatchNormalization, inputs, training=None, mask=None):
    kernel = _fused_kernel(self, inputs, training, mask)
    if kernel is None:
        return keras.layers.BatchNormalization.call(self, inputs, training=training, mask=mask)
    # float32 and bfloat16 go in as they are: the kernel accumulates the statistics in float32
    # either way (as Keras does after casting); under a mixed_bfloat16 policy casting every
    # activation to float32 and back would add two passes over it, forward and backward.
    dtype = keras.backend.standardize_dtype(inputs.dtype)
    x = inputs if dtype in FUSED_INPUT_DTYPES else ops.cast(inputs, "float32")
    outputs, mean, variance = kernel(
        x,
        ops.cast(self.gamma, "float32") if self.scale else ops.ones_like(self.moving_mean),
        ops.cast(self.beta, "float32") if self.center else ops.zeros_like(self.moving_mean),
        self.epsilon,
        self.axis % 4 == 1,
    )
    momentum = self.momentum
    self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
    self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
    return ops.cast(outputs, self.compute_dtype)


def _fused_kernel(layer, inputs, training, mask) -> Callable | None:
    """The backend's fused training kernel when this call can use it, else None."""
    if not (training and layer.trainable) or mask is not None:
        return None
    if layer.synchronized or layer.renorm or len(inputs.shape) != 4 or layer.axis % 4 not in (1, 3):
        return None
    if keras.backend.backend() != "tensorflow":
        return None
    from keras_preact import tensorflow_kernels  # TensorFlow: only on its backend

    return tensorflow_kernels.fused_batch_norm_training
