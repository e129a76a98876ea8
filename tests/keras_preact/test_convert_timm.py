"""timm resnetv2 -> keras-preact v2: the logits of timm's own networks, to 1e-4.

timm's ``resnetv2_50`` (saved as ``.safetensors``, as timm publishes it) at 224×224, and
``resnetv2_101`` (a ``.pth`` state dict) at 64×64, randomly initialised with randomised batch-norm
statistics, on real images.
"""

from __future__ import annotations

import pytest
import torch
from convert_helpers import assert_parity, images, keras_logits, nchw, randomize_torch, torch_logits
from safetensors.torch import save_file

import keras_preact as kp
from keras_preact.convert import convert_checkpoint
from keras_preact.convert.sources import import_timm


@pytest.fixture(scope="module")
def timm():
    return import_timm()


@pytest.mark.slow
def test_resnetv2_50_safetensors_matches_timm_at_224(timm, tmp_path):
    pixels, _ = images(3, 224)
    x = pixels / 127.5 - 1.0  # timm's resnetv2 weights take [-1, 1]
    net = randomize_torch(timm.create_model("resnetv2_50"), seed=2, images=nchw(x))
    assert net.head.fc.weight.ndim == 4  # timm's classifier is a 1×1 convolution
    save_file(net.state_dict(), tmp_path / "model.safetensors")

    conversion = convert_checkpoint(tmp_path / "model.safetensors")
    assert conversion.source.source == "timm resnetv2_50"
    assert conversion.model.name == "resnet50v2"
    assert conversion.preprocessing == "imagenet_inception"
    assert conversion.loaded.tensors + conversion.loaded.ignored == len(net.state_dict())
    # The model's own preprocess layer scales raw pixels to [-1, 1].
    assert_parity(keras_logits(conversion.model, pixels), torch_logits(net, x))


def test_resnetv2_101_pth_maps_every_tensor(timm, tmp_path):
    _, x = images(2, 64, "imagenet_inception")
    net = randomize_torch(timm.create_model("resnetv2_101", num_classes=7), seed=3, images=nchw(x))
    torch.save(net.state_dict(), tmp_path / "resnetv2_101.pth")

    model = kp.ResNet101V2(
        weights=tmp_path / "resnetv2_101.pth",
        input_shape=(64, 64, 3),
        classes=7,
        classifier_activation=None,
    )
    assert_parity(keras_logits(model, x), torch_logits(net, x))
