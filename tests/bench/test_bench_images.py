"""The image stages' pieces: the JPEG folder, torchvision's side of the augmentation (the same as
keras-preact's), ResNet-50 against torchvision's, and what a DataLoader's workers cost counting as
the measuring process's own CPU time."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import torch
from PIL import Image

import keras_preact
from bench import architectures, parity, torch_images
from bench.jpeg_folder import MARKER, FolderSpec, ensure_folder, folder_stats
from bench.timing import _live_children, _own_seconds
from training.data.images import feed as feed_images
from training.data.images.folder import scan

TINY = FolderSpec(train_per_class=2, val_per_class=1, copies=2, sides=(40, 64))


def test_the_folder_is_written_once_with_real_jpegs_at_the_spec_sizes(tmp_path):
    root = ensure_folder(tmp_path, TINY)
    found = scan(root)
    assert len(found.class_names) == 10
    assert (len(found.train), len(found.val)) == (40, 10)
    for path in found.train.files[:6]:
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert all(40 <= side <= 64 for side in image.size)
    assert folder_stats(root)["train_images"] == 40
    assert json.loads((root / MARKER).read_text())["spec"]["sides"] == [40, 64]
    stamp = (root / MARKER).stat().st_mtime_ns
    assert ensure_folder(tmp_path, TINY) == root
    assert (root / MARKER).stat().st_mtime_ns == stamp  # reused, not written again
    # A folder its writer did not finish is written again.
    (root / MARKER).unlink()
    assert ensure_folder(tmp_path, TINY) == root and (root / MARKER).is_file()
    # Another spec, another folder.
    assert ensure_folder(tmp_path, FolderSpec(**{**TINY.__dict__, "seed": 1})) != root


def test_torchvisions_augmentation_uses_keras_preacts_constants():
    lighting = torch_images.Lighting()
    assert torch.equal(lighting.eigenvalues, torch.tensor(feed_images.PCA_EIGENVALUES))
    assert torch.equal(lighting.eigenvectors, torch.tensor(feed_images.PCA_EIGENVECTORS))
    assert lighting.std == feed_images.Augment.make(224, "scale").lighting
    for size in (32, 64, 100, 224, 320):
        resize = torch_images.paper_transform(size).transforms[0]
        expected = feed_images.Augment.make(size, "scale").scale_range
        assert (resize.min_size, resize.max_size - 1) == expected
    mean, std = keras_preact.mean_std("imagenet")
    np.testing.assert_allclose(architectures.IMAGENET_MEAN, mean, rtol=1e-6)
    np.testing.assert_allclose(architectures.IMAGENET_STD, std, rtol=1e-6)


def test_lighting_adds_the_same_colour_noise_as_keras_preact_for_the_same_draw():
    key = tf.constant([3, 4], tf.int32)
    ours = feed_images.lighting_noise(key, 0.1).numpy()
    alpha = tf.random.stateless_normal([3], key, stddev=0.1).numpy()
    lighting = torch_images.Lighting()
    np.testing.assert_allclose(lighting.noise(torch.from_numpy(alpha)).numpy(), ours, rtol=1e-5)
    image = torch.full((3, 4, 5), 100.0)
    out = lighting(image)
    offset = out[:, 0, 0] - 100.0  # one offset per channel, the same at every pixel
    assert torch.equal(out, image + offset.view(3, 1, 1)) and offset.abs().max() > 0


def test_the_transform_resizes_the_shorter_side_into_the_range_then_crops():
    transform = torch_images.paper_transform(64)
    low, high = feed_images.Augment.make(64, "scale").scale_range
    image = Image.fromarray(np.zeros((90, 150, 3), np.uint8))
    out = transform(image)
    assert out.shape == (3, 64, 64) and out.dtype == torch.float32
    torch.manual_seed(0)
    resize = transform.transforms[0]
    shorter = [min(resize(image).size) for _ in range(1500)]
    assert (min(shorter), max(shorter)) == (low, high) == (73, 137)


def test_resnet50_is_torchvisions_only_with_the_stride_on_the_3x3(monkeypatch):
    assert parity.check_parity("ResNet50V1") == {"keras-preact": 23_528_522, "pytorch": 23_528_522}
    # The same weight shapes with the stride on the first 1x1: a different network, refused.
    arch = architectures.ARCHITECTURES["ResNet50V1"]
    monkeypatch.setitem(architectures.ARCHITECTURES, "ResNet50V1", arch._replace(options=()))
    with pytest.raises(ValueError, match="keras-preact's convolutions stride differently"):
        parity.check_parity("ResNet50V1")


CHILD = textwrap.dedent(
    """
    import sys, time
    while time.process_time() < 0.3:
        pass
    print("busy", flush=True)
    sys.stdin.read()
    """
)


def test_child_processes_cpu_time_counts_as_the_measuring_processs_own():
    before = _own_seconds()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline() == "busy\n"
    # Still running: counted as a live child. (Other tests may have left children of their own
    # running in this process; only this one is looked at.)
    assert _live_children().get(child.pid, 0.0) >= 0.25
    child.stdin.close()
    child.wait()
    assert child.pid not in _live_children()
    assert _own_seconds() - before >= 0.25  # ended and waited for
