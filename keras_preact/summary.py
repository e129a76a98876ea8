"""Parameter and multiply-add counts, comparable with the v1 paper's FLOPs column (Table 1).

The paper counts multiply-adds of the convolutions and the classifier; batch normalisation,
ReLU, additions and pooling are left out, and so they are here.
"""

from __future__ import annotations

import dataclasses
import math

import keras


@dataclasses.dataclass(frozen=True)
class ModelStats:
    """What a model costs: parameters and multiply-adds for one image."""

    name: str
    params: int
    trainable_params: int
    macs: int

    @property
    def params_m(self) -> float:
        """Parameters in millions."""
        return self.params / 1e6

    @property
    def gmacs(self) -> float:
        """Multiply-adds in billions (the v1 paper's "FLOPs")."""
        return self.macs / 1e9


def count_macs(model: keras.Model) -> int:
    """Multiply-adds of every Conv2D and Dense layer for one input image.

    Needs a model whose input height and width are known (it reads each layer's output shape).
    """
    total = 0
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.Conv2D):
            out_shape = layer.output.shape
            spatial = out_shape[1:3] if layer.data_format == "channels_last" else out_shape[2:4]
            if any(d is None for d in spatial):
                raise ValueError(
                    f"count_macs needs a fixed input size; {model.name} has {model.input_shape}"
                )
            kh, kw, cin_per_group, cout = layer.kernel.shape
            total += math.prod(spatial) * kh * kw * cin_per_group * cout
        elif isinstance(layer, keras.layers.Dense):
            cin, cout = layer.kernel.shape
            total += cin * cout
    return int(total)


def _all_layers(model: keras.Model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer


def model_stats(model: keras.Model) -> ModelStats:
    """Parameters (all and trainable) and multiply-adds of ``model``."""
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    return ModelStats(model.name, int(model.count_params()), int(trainable), count_macs(model))
