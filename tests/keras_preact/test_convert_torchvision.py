"""torchvision ResNets -> keras-preact v1: the logits of torchvision's own networks, to 1e-4.

Randomly initialised torchvision networks (built from torchvision's code) with randomised
batch-norm statistics, saved as ``.pth`` state dicts, converted, and run on real images (the
embedded sample, upscaled to 224×224 for the full check; 64×64 for ResNet-34, -101 and -152).
"""

from __future__ import annotations

import pytest
import torch
from convert_helpers import (
    assert_parity,
    images,
    keras_logits,
    nchw,
    randomize_torch,
    torch_logits,
)

import keras_preact as kp
from keras_preact.convert import convert_checkpoint
from keras_preact.convert.sources import import_torchvision_models


@pytest.fixture(scope="module")
def models():
    return import_torchvision_models()


def test_resnet18_through_weights_matches_torchvision_at_224(models, tmp_path):
    pixels, x = images(4, 224)
    net = randomize_torch(models.resnet18(), seed=18, images=nchw(x))
    torch.save(net.state_dict(), tmp_path / "resnet18.pth")

    model = kp.ResNet18V1(
        weights=tmp_path / "resnet18.pth", preprocessing="imagenet", classifier_activation=None
    )
    # The model takes raw pixels (its preprocess layer normalises them); torchvision normalised.
    assert_parity(keras_logits(model, pixels), torch_logits(net, x))


@pytest.mark.slow
def test_resnet50_converts_with_the_stride_on_the_3x3_and_matches_at_224(models, tmp_path):
    pixels, x = images(3, 224)
    net = randomize_torch(models.resnet50(), seed=50, images=nchw(x))
    torch.save(net.state_dict(), tmp_path / "resnet50.pth")

    conversion = convert_checkpoint(tmp_path / "resnet50.pth")
    assert conversion.source.source == "torchvision resnet50"
    assert conversion.model.name == "resnet50v1"
    assert conversion.model.get_layer("stage2_unit1_conv2").strides == (2, 2)  # the 3×3
    assert conversion.preprocessing == "imagenet"
    # Every tensor but the 53 batch-norm step counters went into the model.
    assert conversion.loaded.tensors + conversion.loaded.ignored == len(net.state_dict())
    assert conversion.loaded.ignored == 53
    assert_parity(keras_logits(conversion.model, pixels), torch_logits(net, x))


@pytest.mark.parametrize("depth", [34, 101, 152])
def test_deeper_networks_map_every_tensor(models, tmp_path, depth):
    _, x = images(2, 64)
    net = randomize_torch(getattr(models, f"resnet{depth}")(num_classes=10), depth, nchw(x))
    torch.save(net.state_dict(), tmp_path / f"resnet{depth}.pth")

    options = {"bottleneck_stride": "3x3"} if depth > 34 else {}
    model = kp.ResNet(
        depth,
        "v1",
        "imagenet",
        weights=tmp_path / f"resnet{depth}.pth",
        input_shape=(64, 64, 3),
        classes=10,
        classifier_activation=None,
        **options,
    )
    assert_parity(keras_logits(model, x), torch_logits(net, x))
