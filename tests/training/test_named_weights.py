"""Published weights by name in the training commands: ``training.evaluate --model resnet20v1
--weights cifar10`` and ``training.images --model resnet20v1 --weights cifar10 --recipe finetune``,
the checkpoint served from 127.0.0.1 (an akamaster-format ResNet-20 generated here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from image_helpers import write_folder
from weights_server import Server

import keras_preact
from training import evaluate, images
from training.run import run_folder as rundir

# The converter tests' source networks (appended: the package itself stays first on the path).
sys.path.append(str(Path(__file__).resolve().parents[1] / "keras_preact"))
from convert_helpers import CifarResNet, nchw, randomize_torch
from convert_helpers import images as sample_images


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("images") / "photos")


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A random ResNet-20 in akamaster's format, published as ``akamaster:cifar10``."""
    _, x = sample_images(8, 32, "imagenet")
    net = randomize_torch(CifarResNet("v1", 3), seed=21, images=nchw(x))
    path = tmp_path / "resnet20.th"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    monkeypatch.setenv("KERAS_PREACT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("KERAS_PREACT_WEIGHTS_MIRROR", raising=False)
    s = Server()
    s.publish("akamaster:cifar10", "resnet20v1", path, monkeypatch)
    yield s
    s.stop()


@pytest.mark.slow
def test_evaluate_and_finetune_published_weights_by_name(folder, server, tmp_path, capsys):
    report = tmp_path / "center.json"
    argv = ["--model", "resnet20v1", "--weights", "cifar10", "--data", str(folder)]
    assert evaluate.main([*argv, "--output", str(report)]) == 0
    written = json.loads(report.read_text())
    assert written["weights"] == "cifar10" and written["model"] == "resnet20v1"
    assert written["images"] == 20 and written["classes"] == 10 and written["image_size"] == 32
    assert len(server.requests) == 1

    out = tmp_path / "finetuned"
    args = ["--data", str(folder), "--model", "resnet20v1", "--weights", "cifar10"]
    args += ["--recipe", "finetune", "--freeze", "stage3", "--epochs", "1", "--batch-size", "20"]
    args += ["--image-size", "32", "--output", str(out), "--verbose", "quiet", "--seed", "1"]
    assert images.main(args) == 0
    assert len(server.requests) == 1  # the cache served the second use
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["model_resolved"] == {"weights": "cifar10"}
    tuned = keras_preact.load_model(out / rundir.BEST)
    source = keras_preact.ResNet20V1(weights="cifar10")
    # The backbone, frozen, is the published network's; the preprocessing is the weights'.
    np.testing.assert_array_equal(
        tuned.get_layer("stage3_unit3_conv2").get_weights()[0],
        source.get_layer("stage3_unit3_conv2").get_weights()[0],
    )
    assert tuned.get_layer("preprocess") is not None

    # A name that does not fit the model is refused before any data is read.
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        images.main(
            ["--data", str(tmp_path / "none"), "--model", "resnet110v1", "--weights", "cifar100"]
        )
    assert exit_.value.code == 2
    assert (
        "--weights cifar100: no published cifar100 weights hold resnet110v1"
        in capsys.readouterr().err
    )
