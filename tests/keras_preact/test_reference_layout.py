"""The layout to the pixel: keras-preact computes what the papers' (Torch) reference code computes.

A small, plain PyTorch implementation of the reference networks is written here, from the papers
and their code: 3×3 convolutions pad one pixel on every side (also when strided), 1×1 projections
and option A subsample pixels 0, 2, 4, …, the ImageNet stem is a 7×7/2 convolution padded by 3 and
a 3×3/2 max-pool padded by 1 (padding that never wins). Every keras-preact weight is copied into it
by layer name (and every one of its weights must be used), batch-norm statistics set to
non-trivial values, and both run in inference mode on the same images: the logits agree to 1e-5.

With TensorFlow's 'same' padding on strided convolutions (pad 0 before, 1 after on an even input)
the residual branch samples pixels 1, 3, 5, … while the shortcut samples 0, 2, 4, …: these
comparisons fail by far more than the tolerance.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from model_helpers import randomize_batch_norm
from torch import nn

import keras_preact as kp

TOLERANCE = 1e-5


class Reference(nn.Module):
    """A ResNet as the references write it, its parameters named after keras-preact's layers."""

    def __init__(self, family, version, counts, unit, widths, classes, projection, stride_on):
        super().__init__()
        self.family, self.version, self.unit = family, version, unit
        self.projection, self.stride_on = projection, stride_on
        self.convs = nn.ModuleDict()
        self.bns = nn.ModuleDict()
        self.plan = []
        preact = version == "v2"
        channels = self._conv("stem_conv", 3, widths[0], 3 if family == "cifar" else 7)
        if not preact:
            self._bn("stem_bn", channels)
        expansion = 4 if unit == "bottleneck" else 1
        for s, (count, width) in enumerate(zip(counts, widths, strict=True), start=1):
            for u in range(1, count + 1):
                prefix = f"stage{s}_unit{u}"
                stride = 2 if (u == 1 and s > 1) else 1
                out = width * expansion
                kernels = (3, 3) if unit == "basic" else (1, 3, 1)
                widths_in = [channels] + [width] * (len(kernels) - 1)
                widths_out = [width] * (len(kernels) - 1) + [out]
                for i, (k, cin, cout) in enumerate(
                    zip(kernels, widths_in, widths_out, strict=True), start=1
                ):
                    self._conv(f"{prefix}_conv{i}", cin, cout, k)
                    self._bn(f"{prefix}_bn{i}", cin if preact else cout)
                project = (stride != 1 or channels != out) and projection == "B"
                if project:
                    self._conv(f"{prefix}_shortcut_conv", channels, out, 1)
                    if not preact:
                        self._bn(f"{prefix}_shortcut_bn", out)
                self.plan.append((prefix, stride, channels, out, project, s == u == 1))
                channels = out
        if preact:
            self._bn("post_bn", channels)
        self.fc = nn.Linear(channels, classes)

    def _conv(self, name, cin, cout, k):
        self.convs[name] = nn.Conv2d(cin, cout, k, bias=False)
        return cout

    def _bn(self, name, channels):
        self.bns[name] = nn.BatchNorm2d(channels, eps=1e-5)

    def conv(self, name, x, stride):
        weight = self.convs[name].weight
        return F.conv2d(x, weight, stride=stride, padding=weight.shape[-1] // 2)

    def bn_relu(self, name, x):
        return F.relu(self.bns[name](x))

    def forward(self, x):
        preact = self.version == "v2"
        x = self.conv("stem_conv", x, 1 if self.family == "cifar" else 2)
        if not preact:
            x = self.bn_relu("stem_bn", x)
        if self.family == "imagenet":
            x = F.max_pool2d(x, 3, 2, 1)  # pads with -inf
        for prefix, stride, cin, cout, project, first in self.plan:
            if self.unit == "basic":
                strides = (stride, 1)
            elif self.stride_on == "1x1":
                strides = (stride, 1, 1)
            else:
                strides = (1, stride, 1)
            if preact:
                # BN-ReLU-conv; the first activation feeds the projection, and in the first unit
                # (after the stem) the identity too (v2 paper, appendix).
                y = act = self.bn_relu(f"{prefix}_bn1", x)
                for i, s in enumerate(strides, start=1):
                    if i > 1:
                        y = self.bn_relu(f"{prefix}_bn{i}", y)
                    y = self.conv(f"{prefix}_conv{i}", y, s)
                shortcut_in = act if (project or first) else x
            else:
                y = x
                for i, s in enumerate(strides, start=1):
                    y = self.bns[f"{prefix}_bn{i}"](self.conv(f"{prefix}_conv{i}", y, s))
                    if i < len(strides):
                        y = F.relu(y)
                shortcut_in = x
            if project:
                shortcut = self.conv(f"{prefix}_shortcut_conv", shortcut_in, stride)
                if not preact:
                    shortcut = self.bns[f"{prefix}_shortcut_bn"](shortcut)
            elif stride != 1 or cin != cout:  # option A: x[:, :, ::2, ::2], zero channels after
                shortcut = F.pad(shortcut_in[:, :, ::stride, ::stride], (0, 0, 0, 0, 0, cout - cin))
            else:
                shortcut = shortcut_in
            x = shortcut + y
            if not preact:
                x = F.relu(x)
        if preact:
            x = self.bn_relu("post_bn", x)
        return self.fc(x.mean(dim=(2, 3)))


def randomize(model: keras.Model, seed: int, images: np.ndarray) -> None:
    """Non-trivial batch-norm statistics and affine parameters, and a classifier scaled so that
    the logits of ``images`` are a few units large (an absolute tolerance then means something)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            randomize_batch_norm(layer, rng)
    logits = model.get_layer("logits")
    scale = 3.0 / np.abs(np.asarray(model(images, training=False))).max()
    logits.set_weights([w * scale for w in logits.get_weights()])


def copy_into(model: keras.Model, reference: Reference) -> None:
    """Copy every weight by name; every weight on both sides must be used exactly once."""
    used = set()
    with torch.no_grad():
        for layer in model.layers:
            if not layer.weights or layer.name.endswith("_shortcut_pad"):
                continue  # option A's fixed 0/1 kernel is F.pad and slicing in the reference
            values = [torch.from_numpy(np.asarray(w)) for w in layer.get_weights()]
            if isinstance(layer, keras.layers.Conv2D):
                reference.convs[layer.name].weight.copy_(values[0].permute(3, 2, 0, 1))
            elif isinstance(layer, keras.layers.BatchNormalization):
                bn = reference.bns[layer.name]
                for target, value in zip(
                    (bn.weight, bn.bias, bn.running_mean, bn.running_var), values, strict=True
                ):
                    target.copy_(value)
            else:
                assert layer.name == "logits"
                reference.fc.weight.copy_(values[0].T)
                reference.fc.bias.copy_(values[1])
                layer_name = "fc"
            used.add(layer.name if layer.name != "logits" else layer_name)
    assert used == {*reference.convs, *reference.bns, "fc"}


CASES = {
    "cifar-v1-option-A": (dict(depth=20, version="v1", family="cifar"), 32),
    "cifar-v2-bottleneck": (dict(depth=29, version="v2", family="cifar", unit="bottleneck"), 32),
    "imagenet-v1-basic": (dict(depth=18, version="v1", family="imagenet"), 64),
    "imagenet-v1-bottleneck-1x1": (dict(depth=50, version="v1", family="imagenet"), 72),
    "imagenet-v1-bottleneck-3x3": (
        dict(depth=50, version="v1", family="imagenet", bottleneck_stride="3x3"),
        64,
    ),
    "imagenet-v2-bottleneck": (dict(depth=50, version="v2", family="imagenet"), 64),
    "imagenet-v2-basic-odd": (dict(depth=18, version="v2", family="imagenet"), 69),
}


@pytest.mark.parametrize("case", list(CASES))
def test_logits_equal_the_reference_implementation(case):
    kwargs, size = CASES[case]
    model = kp.ResNet(**kwargs, input_shape=(size, size, 3), classes=7, classifier_activation=None)
    images = np.random.default_rng(1).uniform(-1, 1, (3, size, size, 3)).astype("float32")
    randomize(model, len(case), images)
    arch = kp.architecture(**{k: v for k, v in kwargs.items()})
    reference = Reference(
        arch.family,
        arch.version,
        arch.counts,
        arch.spec.unit,
        arch.widths,
        7,
        arch.spec.projection,
        arch.spec.bottleneck_stride,
    ).eval()
    copy_into(model, reference)

    expected = reference(torch.from_numpy(images).permute(0, 3, 1, 2)).detach().numpy()
    logits = np.asarray(model(images, training=False))
    assert np.abs(expected).max() > 1.0  # the comparison is not between two near-zero outputs
    np.testing.assert_allclose(logits, expected, rtol=0, atol=TOLERANCE)
