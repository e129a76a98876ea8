"""PyTorch CIFAR ResNets -> keras-preact's CIFAR networks: the PyTorch logits, to 1e-4.

The layouts are written in ``convert_helpers`` as their codes write them (akamaster's v1 with
option A zeros split around the input, or option B; the pre-activation v2), randomly initialised
with randomised batch-norm statistics, saved as their trainers save them, converted, and run on
the embedded sample's real images.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from convert_helpers import CifarResNet, assert_parity, images, nchw, randomize_torch, torch_logits

import keras_preact as kp
from keras_preact.convert import convert_checkpoint


def checkpoint(net, path, *, wrap=False, prefix=""):
    """``torch.save`` of the state dict; ``wrap``: as akamaster's trainer saves it (DataParallel
    names under ``state_dict``, with the best precision)."""
    state = {prefix + k: v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "best_prec1": torch.tensor(91.7)} if wrap else state, path)
    return path


def logits(model, x):
    return np.asarray(model(x, training=False))


@pytest.fixture(scope="module")
def sample():
    return images(8, 32, "cifar10")[1]


def test_resnet20_option_a_akamaster_checkpoint(tmp_path, sample):
    net = randomize_torch(CifarResNet("v1", 3), seed=20, images=nchw(sample))
    path = checkpoint(net, tmp_path / "resnet20-12fca82f.th", wrap=True, prefix="module.")
    model = kp.ResNet20V1(weights=path, classifier_activation=None)
    assert_parity(logits(model, sample), torch_logits(net, sample))


def test_option_a_with_zeros_after_the_input(tmp_path, sample):
    net = randomize_torch(CifarResNet("v1", 3, zeros="after"), seed=21, images=nchw(sample))
    path = checkpoint(net, tmp_path / "resnet20.pth")
    conversion = convert_checkpoint(path, option_a="after", classifier_activation=None)
    assert_parity(logits(conversion.model, sample), torch_logits(net, sample))
    # Read as akamaster's split zeros, the same checkpoint is another network.
    split = convert_checkpoint(path, classifier_activation=None)
    assert np.abs(logits(split.model, sample) - torch_logits(net, sample)).max() > 0.1


def test_option_b_projections_and_current_akamaster_names(tmp_path, sample):
    net = randomize_torch(CifarResNet("v1", 5, option="B", classes=100), 32, nchw(sample))
    state = {k.replace("conv", "compressible_conv").replace("linear", "compressible_linear"): v
             for k, v in net.state_dict().items()}  # fmt: skip
    path = tmp_path / "resnet32.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"needs projection='B'.*classes=100|projection='B'"):
        kp.ResNet32V1(weights=path, classes=100)
    model = kp.ResNet32V1(weights=path, projection="B", classes=100, classifier_activation=None)
    assert_parity(logits(model, sample), torch_logits(net, sample), tolerance=1e-4)


def test_bottleneck_v1_with_downsample_names(tmp_path, sample):
    net = randomize_torch(CifarResNet("v1", 3, bottleneck=True, option="B"), 29, nchw(sample))
    state = {k.replace("shortcut", "downsample"): v for k, v in net.state_dict().items()}
    torch.save(state, tmp_path / "resnet29.pth")
    conversion = convert_checkpoint(tmp_path / "resnet29.pth", classifier_activation=None)
    assert conversion.source.summary().startswith("ResNet29V1")
    assert conversion.source.options == {"projection": "B", "bottleneck_stride": "3x3"}
    assert_parity(logits(conversion.model, sample), torch_logits(net, sample))


def test_basic_preactivation_units(tmp_path, sample):
    """ResNet-110 v2's layout at ResNet-20's depth (the mapping does not depend on it)."""
    net = randomize_torch(CifarResNet("v2", 3), seed=110, images=nchw(sample))
    model = kp.get_model(
        "resnet20v2",
        weights=checkpoint(net, tmp_path / "preresnet20.pth"),
        classifier_activation=None,
    )
    assert_parity(logits(model, sample), torch_logits(net, sample))


@pytest.mark.slow
def test_resnet164v2_preactivation_bottleneck(tmp_path, sample):
    net = randomize_torch(CifarResNet("v2", 18, bottleneck=True), seed=164, images=nchw(sample))
    path = checkpoint(net, tmp_path / "preresnet164.pth", wrap=True, prefix="module.")
    conversion = convert_checkpoint(path, classifier_activation=None)
    assert conversion.model.name == "resnet164v2"
    assert_parity(logits(conversion.model, sample), torch_logits(net, sample))
