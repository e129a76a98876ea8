"""The PyTorch peer and the plain Keras model are the same networks as keras-preact's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import keras_preact
from bench import parity, torch_resnet
from bench.architectures import CIFAR10_MEAN, CIFAR10_STD, get_architecture
from bench.torch_train import augment
from keras_preact.command_line import UserError


def test_resnet20_has_the_papers_parameter_count_everywhere():
    counts = parity.check_parity("ResNet20V1")
    assert counts == {"keras-preact": 269_722, "plain-keras": 269_722, "pytorch": 269_722}


@pytest.mark.slow
def test_v2_bottleneck_networks_match():
    # 1.7M in the v2 paper's table; equal weight shapes, not only equal totals.
    assert set(parity.check_parity("ResNet164V2").values()) == {1_703_258}


def test_parity_rejects_a_different_network(monkeypatch):
    build = torch_resnet.build_torch_resnet
    monkeypatch.setattr(
        torch_resnet, "build_torch_resnet", lambda name, mean, std: build("ResNet20V1", mean, std)
    )
    with pytest.raises(ValueError, match="ResNet8V1: the implementations differ"):
        parity.check_parity("ResNet8V1")


def test_unknown_model_names_the_allowed_ones():
    with pytest.raises(UserError, match="allowed: ResNet8V1, ResNet20V1"):
        get_architecture("resnet21v1")


def test_normalization_constants_are_keras_preacts():
    mean, std = keras_preact.mean_std("cifar10")
    np.testing.assert_allclose(CIFAR10_MEAN, mean, rtol=1e-6)
    np.testing.assert_allclose(CIFAR10_STD, std, rtol=1e-6)


def test_augmentation_is_a_per_image_padded_crop_and_flip():
    x = torch.rand(16, 3, 32, 32) * 255
    fill = (10.0, 20.0, 30.0)
    out = augment(x, torch.Generator().manual_seed(3), fill)
    # Replay the same draws and cut each image by hand.
    g = torch.Generator().manual_seed(3)
    dy, dx = torch.randint(0, 9, (16,), generator=g), torch.randint(0, 9, (16,), generator=g)
    flip = torch.rand(16, generator=g) < 0.5
    padded = torch.stack([F.pad(x[:, c], (4, 4, 4, 4), value=fill[c]) for c in range(3)], 1)
    for i in range(16):
        crop = padded[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32]
        torch.testing.assert_close(out[i], crop.flip(2) if flip[i] else crop)
    assert flip.any() and not flip.all()
    assert (dy != 4).any()


def test_serving_module_takes_nhwc_pixels_and_returns_probabilities():
    net = torch_resnet.build_torch_resnet("ResNet8V1", CIFAR10_MEAN, CIFAR10_STD)
    serving = torch_resnet.ServingModule(net).eval()
    x = torch.rand(3, 32, 32, 3) * 255
    with torch.no_grad():
        probs = serving(x)
        logits = net(x.permute(0, 3, 1, 2))
    torch.testing.assert_close(probs.sum(1), torch.ones(3))
    torch.testing.assert_close(probs.argmax(1), logits.argmax(1))
