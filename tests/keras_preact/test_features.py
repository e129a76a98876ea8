"""Backbones: the stage outputs as a named dict (``features=``, ``keras_preact.feature_extractor``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import layers
from model_helpers import randomize_batch_norm, run_on_jax

import keras_preact as kp
from keras_preact.datasets import load_sample

# name: (build kwargs, input size, strides of the stages, channels of the stages)
NETWORKS = {
    "cifar_v1": (dict(depth=20, version="v1"), 32, (1, 2, 4), (16, 32, 64)),
    "cifar_v2": (dict(depth=11, version="v2", unit="bottleneck"), 32, (1, 2, 4), (64, 128, 256)),
    "imagenet_v1": (dict(depth=18, version="v1", family="imagenet"), 64, (4, 8, 16, 32), (64, 128, 256, 512)),
    "imagenet_v2": (dict(depth=50, version="v2", family="imagenet"), 64, (4, 8, 16, 32), (256, 512, 1024, 2048)),
}  # fmt: skip


def build(network: str, **kwargs) -> keras.Model:
    arch, size, _, _ = NETWORKS[network]
    arch = dict(arch)
    return kp.ResNet(arch.pop("depth"), input_shape=(size, size, 3), **arch, **kwargs)


def images(size: int, n: int = 4) -> np.ndarray:
    """Real CIFAR-10 test images, scaled to [0, 1] and resized to ``size``."""
    x = load_sample().x_test[:n].astype("float32") / 255.0
    return x if size == 32 else np.asarray(keras.ops.image.resize(x, (size, size)))


def randomize(model: keras.Model, seed: int = 0) -> None:
    """Non-trivial batch-norm statistics, so that every layer of a stage shows in its output."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            randomize_batch_norm(layer, rng)


def documented_layer(network: str, stage: int, units: int) -> str:
    """The layer the docstring names for a stage: v1 after the ReLU, v2 the sum."""
    suffix = "out_relu" if network.endswith("v1") else "add"
    return f"stage{stage}_unit{units}_{suffix}"


@pytest.mark.parametrize("network", NETWORKS)
def test_stage_shapes_and_strides(network):
    _, size, strides, channels = NETWORKS[network]
    names = tuple(f"stage{s}" for s in range(1, len(strides) + 1))
    model = build(network, include_top=False, features=names)
    assert isinstance(model.output, dict) and tuple(model.output) == names
    maps = model.predict_on_batch(images(size, 2))
    assert tuple(maps) == names
    for name, stride, width in zip(names, strides, channels, strict=True):
        assert maps[name].shape == (2, size // stride, size // stride, width), name
        assert tuple(model.output[name].shape) == (None, size // stride, size // stride, width)


@pytest.mark.parametrize("network", NETWORKS)
def test_stage_outputs_are_the_full_models_tensors(network, tmp_path):
    """Built from a weights file with ``features=``: the values of the documented internal tensors
    of the full model with the same weights (v1 after the ReLU, v2 the raw sums)."""
    arch, size, strides, _ = NETWORKS[network]
    full = build(network, include_top=False)
    randomize(full)
    path = tmp_path / "full.keras"
    full.save(path)
    names = tuple(f"stage{s}" for s in range(1, len(strides) + 1))
    backbone = build(network, include_top=False, features=list(reversed(names)), weights=path)
    assert tuple(backbone.output) == names  # stage order, whatever the order asked for
    _, counts = kp.units_per_stage(arch.get("family", "cifar"), arch["depth"], arch.get("unit"))
    probe = keras.Model(
        full.input,
        {
            f"stage{s}": full.get_layer(documented_layer(network, s, n)).output
            for s, n in enumerate(counts, start=1)
        },
    )
    x = images(size)
    got, expected = backbone(x, training=False), probe(x, training=False)
    for name in names:
        np.testing.assert_allclose(np.asarray(got[name]), np.asarray(expected[name]), atol=1e-5)
    last = np.asarray(got[names[-1]])
    if network.endswith("v1"):
        assert all(np.asarray(got[n]).min() >= 0 for n in names)
    else:  # v2: the last stage is the sum the head's BN-ReLU normalises, not its output
        head_input = keras.Model(full.input, full.get_layer("post_bn").input)(x, training=False)
        np.testing.assert_allclose(last, np.asarray(head_input), atol=1e-5)
        assert last.min() < 0


@pytest.mark.parametrize("network", ["cifar_v1", "imagenet_v2"])
def test_feature_extractor_of_a_loaded_model_keeps_its_weights(network, tmp_path):
    """feature_extractor on a classifier loaded from .keras; the saved backbone loads in plain
    Keras (a Python without keras_preact imported) with the same outputs."""
    _, size, strides, _ = NETWORKS[network]
    model = build(network, preprocessing="cifar10")
    randomize(model, seed=1)
    model.save(tmp_path / "model.keras")
    loaded = kp.load_model(tmp_path / "model.keras")
    backbone = kp.feature_extractor(loaded, ("stage3", "stage2"), name="backbone")
    assert backbone.name == "backbone" and tuple(backbone.output) == ("stage2", "stage3")
    x = images(size) * 255.0  # raw pixels: the loaded model standardises them
    got = backbone(x, training=False)
    expected = kp.feature_extractor(model, ["stage2", "stage3"])(x, training=False)
    for name in ("stage2", "stage3"):
        np.testing.assert_allclose(np.asarray(got[name]), np.asarray(expected[name]), atol=1e-5)
    assert len(kp.feature_extractor(loaded).output) == len(strides)

    backbone.save(tmp_path / "backbone.keras")
    np.savez(tmp_path / "expected.npz", x=x, **{k: np.asarray(v) for k, v in got.items()})
    script = textwrap.dedent(
        """
        import sys
        import keras
        import numpy as np
        model = keras.saving.load_model(sys.argv[1] + "/backbone.keras", safe_mode=True)
        saved = np.load(sys.argv[1] + "/expected.npz")
        out = model(saved["x"], training=False)
        assert sorted(out) == ["stage2", "stage3"], sorted(out)
        for name in out:
            np.testing.assert_allclose(np.asarray(out[name]), saved[name], atol=1e-5)
        assert not any(m.startswith("keras_preact") for m in sys.modules)
        print("plain keras ok")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "plain keras ok" in result.stdout


def fpn_segmenter(backbone: keras.Model, classes: int, width: int = 16) -> keras.Model:
    """A small FPN head: 1×1 laterals (with BN: v2 stages are raw sums), the coarser map
    upsampled and added top-down, then a per-pixel classifier at the input's resolution."""
    maps = backbone.output
    names = list(maps)
    lateral = [layers.BatchNormalization()(layers.Conv2D(width, 1)(maps[n])) for n in names]
    x = lateral[-1]
    for finer in reversed(lateral[:-1]):
        x = layers.Add()([layers.UpSampling2D(2)(x), finer])
    stride = backbone.input.shape[1] // x.shape[1]
    if stride > 1:
        x = layers.UpSampling2D(stride, interpolation="bilinear")(x)
    return keras.Model(backbone.input, layers.Conv2D(classes, 1)(layers.ReLU()(x)))


@pytest.mark.slow
@pytest.mark.parametrize("network", ["cifar_v1", "imagenet_v2"])
def test_fpn_head_trains_on_the_backbone(network):
    """Per-pixel labels from real images (the brightest colour channel of each pixel): the loss
    of a few real training steps goes down."""
    _, size, strides, _ = NETWORKS[network]
    names = [f"stage{s}" for s in range(1, len(strides) + 1)][-3:]
    keras.utils.set_random_seed(0)
    if network == "imagenet_v2":  # the smallest ImageNet network of the family
        backbone = kp.ResNet18V2(include_top=False, features=names, input_shape=(size, size, 3))
    else:
        backbone = build(network, include_top=False, features=names)
    model = fpn_segmenter(backbone, classes=3)
    x = images(size, 32)
    y = np.argmax(x, axis=-1)
    assert model.output_shape == (None, size, size, 3)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    # Training-mode losses: batch norm's moving statistics lag after a few steps.
    losses = [float(model.train_on_batch(x, y)) for _ in range(10)]
    assert np.isfinite(losses).all() and losses[-1] < 0.7 * losses[0], losses


JAX_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import keras
    import keras_preact as kp

    assert keras.backend.backend() == "jax", keras.backend.backend()
    out = sys.argv[1]
    x = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    for version in ("v1", "v2"):
        backbone = kp.ResNet(20, version, include_top=False, features=("stage1", "stage2", "stage3"))
        maps = backbone(x, training=False)
        shapes = {k: tuple(v.shape) for k, v in maps.items()}
        assert shapes == {"stage1": (2, 32, 32, 16), "stage2": (2, 16, 16, 32),
                          "stage3": (2, 8, 8, 64)}, shapes
        again = kp.feature_extractor(kp.ResNet(20, version), "stage2")
        assert list(again.output) == ["stage2"]
        backbone.save(f"{out}/{version}.keras")
        np.savez(f"{out}/{version}.npz", x=x, **{k: np.asarray(v) for k, v in maps.items()})
    print("jax ok")
    """
)


def test_features_on_jax_load_in_tensorflow(tmp_path):
    run_on_jax(JAX_SCRIPT, tmp_path)
    for version in ("v1", "v2"):
        saved = np.load(tmp_path / f"{version}.npz")
        model = keras.saving.load_model(tmp_path / f"{version}.keras", safe_mode=True)
        maps = model(saved["x"], training=False)
        for name in ("stage1", "stage2", "stage3"):
            np.testing.assert_allclose(np.asarray(maps[name]), saved[name], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(features=("stage2",)), "pass include_top=False with it (got include_top=True)"),
        (dict(include_top=False, features=("stage4",)), "unknown stage 'stage4' in features=('stage4',)"),
        (dict(include_top=False, features=("stage1", "stage1")), "stage twice: ('stage1', 'stage1')"),
        (dict(include_top=False, features=[]), "got []"),
        (dict(include_top=False, features=3), "got 3"),
        (dict(include_top=False, features=("stage1",), pooling="avg"), "(got pooling='avg')"),
    ],
)  # fmt: skip
def test_bad_features_get_one_line(kwargs, message):
    with pytest.raises(ValueError) as e:
        kp.ResNet20V1(**kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_feature_extractor_refuses_other_models():
    other = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(2, 1, name="conv")])
    functional = keras.Model(other.inputs, other.outputs, name="mine")
    with pytest.raises(ValueError, match="model 'mine' has no keras-preact stages"):
        kp.feature_extractor(functional)
    with pytest.raises(ValueError, match=r"takes a functional keras\.Model"):
        kp.feature_extractor("resnet20v1")
    model = kp.ResNet20V1()
    with pytest.raises(
        ValueError,
        match=r"unknown stage 'stage4' in stages=\['stage4'\].*'stage1', 'stage2', 'stage3'",
    ):
        kp.feature_extractor(model, ["stage4"])
    with pytest.raises(ValueError, match="name must be a non-empty string, got ''"):
        kp.feature_extractor(model, name="")
