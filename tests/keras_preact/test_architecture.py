"""The networks are those of the papers: parameter counts, multiply-adds, unit structure, names."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest

import keras_preact as kp

# Trainable parameters (BN moving statistics are buffers, not parameters, in the papers' counts).
PAPER_PARAMS_M = {
    "resnet20v1": 0.27,
    "resnet32v1": 0.46,
    "resnet44v1": 0.66,
    "resnet56v1": 0.85,
    "resnet110v1": 1.7,
    "resnet110v2": 1.7,
    "resnet164v2": 1.7,
}


def trainable(model: keras.Model) -> int:
    return kp.model_stats(model).trainable_params


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS_M))
def test_cifar_parameter_counts_match_the_papers(name):
    params_m = trainable(kp.get_model(name)) / 1e6
    # The papers round to two significant digits.
    assert params_m == pytest.approx(PAPER_PARAMS_M[name], rel=0.03), params_m


def test_resnet20_is_the_option_a_network():
    model = kp.ResNet20V1()
    # 269,722 trainable parameters: 19 conv/BN layers, a 64x10 classifier, parameter-free shortcuts.
    assert trainable(model) == 269_722
    assert not [layer for layer in model.layers if "shortcut_conv" in layer.name]
    assert [layer.name for layer in model.layers if layer.name.endswith("shortcut_pad")] == [
        "stage2_unit1_shortcut_pad",
        "stage3_unit1_shortcut_pad",
    ]


def test_resnet50_v1_has_the_reference_parameter_count():
    # torchvision's resnet50 (no conv bias, with the 1000-way classifier): 25,557,032.
    assert trainable(kp.ResNet50V1()) == 25_557_032


@pytest.mark.parametrize(
    ("name", "gmacs"),
    [
        ("resnet18v1", 1.8),
        ("resnet34v1", 3.6),
        ("resnet50v1", 3.8),
        ("resnet101v1", 7.6),
        ("resnet152v1", 11.3),
    ],
)
def test_imagenet_v1_multiply_adds_match_table_1_of_the_v1_paper(name, gmacs):
    stats = kp.model_stats(kp.get_model(name))
    assert stats.gmacs == pytest.approx(gmacs, rel=0.05)
    assert kp.MODELS[name].paper_gmacs == gmacs


def test_v1_unit_is_post_activation_and_v2_unit_is_full_pre_activation():
    def roles(model, prefix):
        return [
            layer.name[len(prefix) + 1 :]
            for layer in model.layers
            if layer.name.startswith(prefix + "_")
        ]

    v1 = kp.ResNet20V1()
    assert roles(v1, "stage1_unit2") == ["conv1", "bn1", "relu1", "conv2", "bn2", "add", "out_relu"]
    v2 = kp.ResNet110V2()
    # Nothing after the addition: x_{l+1} = x_l + F(x_l).
    assert roles(v2, "stage1_unit2") == ["bn1", "relu1", "conv1", "bn2", "relu2", "conv2", "add"]
    # The stem is a bare conv; the first unit's BN-ReLU is shared by both paths; BN-ReLU at the end.
    names = [layer.name for layer in v2.layers]
    assert names[:4] == ["image", "stem_conv", "stage1_unit1_bn1", "stage1_unit1_relu1"]
    add = v2.get_layer("stage1_unit1_add")
    assert {t._keras_history.operation.name for t in add.input} == {
        "stage1_unit1_conv2",
        "stage1_unit1_relu1",
    }
    assert names[-5:] == ["post_bn", "post_relu", "avg_pool", "logits", "predictions"]
    # Identity shortcut elsewhere: the addition takes the previous unit's sum itself.
    add2 = v2.get_layer("stage1_unit2_add")
    assert "stage1_unit1_add" in {t._keras_history.operation.name for t in add2.input}


def test_bottleneck_units_put_the_stride_where_the_papers_code_does():
    v2 = kp.ResNet164V2()
    assert v2.get_layer("stage2_unit1_conv1").strides == (1, 1)
    assert v2.get_layer("stage2_unit1_conv2").strides == (2, 2)
    assert v2.get_layer("stage2_unit1_conv3").filters == 128  # 4x expansion of 32
    # Projection from the shared pre-activation where the shape changes, identity elsewhere.
    assert v2.get_layer("stage2_unit1_shortcut_conv").strides == (2, 2)
    assert "stage2_unit2_shortcut_conv" not in [layer.name for layer in v2.layers]
    v1 = kp.ResNet50V1()
    assert v1.get_layer("stage2_unit1_conv1").strides == (2, 2)
    assert v1.get_layer("stage2_unit1_conv2").strides == (1, 1)
    assert kp.ResNet50V1(bottleneck_stride="3x3").get_layer("stage2_unit1_conv2").strides == (2, 2)


def test_convolutions_have_no_bias_and_he_initialisation():
    model = kp.ResNet20V1()
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and not any(conv.use_bias for conv in convs)
    conv = model.get_layer("stage3_unit2_conv1")  # 3x3, 64 -> 64: std = sqrt(2 / (9 * 64))
    std = float(keras.ops.std(conv.kernel))
    assert std == pytest.approx((2 / (9 * 64)) ** 0.5, rel=0.1)


def test_layer_names_are_unique_and_hierarchical():
    pattern = re.compile(
        r"^(image|preprocess|stem_\w+|stage\d_unit\d+_[a-z_0-9]+|post_bn|post_relu|avg_pool|max_pool|logits|predictions)$"
    )
    for model in (kp.ResNet20V1(), kp.ResNet164V2(preprocessing="cifar10"), kp.ResNet18V2()):
        names = [layer.name for layer in model.layers]
        assert len(names) == len(set(names))
        assert [n for n in names if not pattern.match(n)] == []


@pytest.mark.parametrize(
    ("placement", "roles"),
    [
        ("original", ["conv1", "bn1", "relu1", "conv2", "bn2", "add", "out_relu"]),
        ("bn_after_add", ["conv1", "bn1", "relu1", "conv2", "add", "out_bn", "out_relu"]),
        ("relu_before_add", ["conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "add"]),
        ("relu_preact", ["relu1", "conv1", "bn1", "relu2", "conv2", "bn2", "add"]),
        ("full_preact", ["bn1", "relu1", "conv1", "bn2", "relu2", "conv2", "add"]),
    ],
)
def test_activation_placements_of_figure_4(placement, roles):
    model = kp.ResNet(20, version="v1", placement=placement)
    got = [
        layer.name[len("stage1_unit2_") :]
        for layer in model.layers
        if layer.name.startswith("stage1_unit2_")
    ]
    assert got == roles


@pytest.mark.parametrize(
    ("shortcut", "extra"),
    [
        ("identity", []),
        ("scaling", ["shortcut_scale", "residual_scale"]),
        ("exclusive_gating", ["gate_conv", "gate_complement", "shortcut_gate", "residual_gate"]),
        ("shortcut_gating", ["gate_conv", "gate_complement", "shortcut_gate"]),
        ("conv", ["shortcut_conv", "shortcut_bn"]),
        ("dropout", ["shortcut_dropout", "shortcut_keep"]),
    ],
)
def test_shortcut_kinds_of_figure_2(shortcut, extra):
    model = kp.ResNet(20, version="v1", shortcut=shortcut)
    names = {layer.name for layer in model.layers}
    for role in extra:
        assert f"stage2_unit2_{role}" in names
    if shortcut == "scaling":
        assert model.get_layer("stage2_unit2_shortcut_scale").scale == 0.5
    if "gating" in shortcut:
        assert float(keras.ops.max(model.get_layer("stage1_unit1_gate_conv").bias)) == -6.0


def test_model_table_lists_every_factory():
    assert len(kp.MODEL_NAMES) == 28  # 21 ResNets and 7 plain networks
    for info in kp.MODELS.values():
        assert getattr(kp, info.name).__name__ == info.name
        assert "weight_decay" in getattr(kp, info.name).__doc__


@pytest.mark.parametrize(
    ("plain", "resnet"), [("plain20v1", "resnet20v1"), ("plain18v1", "resnet18v1")]
)
def test_plain_networks_are_the_resnets_without_shortcuts(plain, resnet):
    plain_model, resnet_model = kp.get_model(plain), kp.get_model(resnet)
    assert not [
        layer for layer in plain_model.layers if "shortcut" in layer.name or "_add" in layer.name
    ]
    # The same convolutions, BN and ReLU in the same order and with the same names: only the
    # shortcuts and additions are missing.
    kept = [
        layer.name
        for layer in resnet_model.layers
        if "shortcut" not in layer.name and not layer.name.endswith("_add")
    ]
    assert [layer.name for layer in plain_model.layers] == kept
    shortcut_params = sum(
        w.shape.num_elements() if hasattr(w.shape, "num_elements") else int(np.prod(w.shape))
        for layer in resnet_model.layers
        if "shortcut" in layer.name
        for w in layer.trainable_weights
    )
    assert trainable(plain_model) == trainable(resnet_model) - shortcut_params
    # v1 units end in ReLU after the (missing) addition: conv-BN-ReLU throughout.
    assert plain_model.get_layer("stage2_unit1_out_relu")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ResNet164V2", ("cifar", "v2", 164, "bottleneck", "identity", 5.46)),
        ("plain56v1", ("cifar", "v1", 56, "basic", "none", None)),
        ("resnet38v1", ("cifar", "v1", 38, "basic", "identity", None)),
        ("plain26v2", ("cifar", "v2", 26, "basic", "none", None)),
        ("resnet50v1", ("imagenet", "v1", 50, "bottleneck", "identity", None)),
    ],
)
def test_a_model_name_resolves_once_into_what_it_builds(name, expected):
    info = kp.resolve_model(name)
    assert (info.family, info.version, info.depth, info.unit, info.shortcut) == expected[:5]
    assert info.paper_cifar10_error == expected[5]
    assert (
        kp.resolve_model("resnet110v1").paper_warmup
        and not kp.resolve_model("resnet56v1").paper_warmup
    )


def test_a_generic_bottleneck_name_needs_its_unit():
    assert kp.resolve_model("resnet137v2", unit="bottleneck").unit == "bottleneck"
    with pytest.raises(ValueError, match=r"unknown model 'resnet137v2': .*6n\+2"):
        kp.resolve_model("resnet137v2")
    with pytest.raises(ValueError, match=r"ResNet20V1 uses basic units, got unit='bottleneck'"):
        kp.resolve_model("resnet20v1", unit="bottleneck")
    model = kp.get_model("resnet29v2", unit="bottleneck")
    assert model.name == "resnet29v2" and model.get_layer("stage1_unit1_conv3")
