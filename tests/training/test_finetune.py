"""Fine-tuning: the backbone's lower learning rate (numerically), the new classifier on a loaded
network, freezing by stage, and the plateau rule of the ImageNet recipe."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_preact
from keras_preact.command_line import UserError
from training import recipes
from training.run import finetune


def _tiny(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, activation="tanh", name="stage1_unit1_dense")(inputs)
    x = keras.layers.Dense(2, name="logits")(x)
    return keras.Model(inputs, keras.layers.Activation("softmax", name="predictions")(x))


@pytest.mark.parametrize(("nesterov", "loss_scale"), [(False, True), (True, False)])
def test_backbone_learns_at_the_scaled_rate_exactly(nesterov, loss_scale):
    """Three steps of ``fit`` with BackboneRateSGD(lr 0.1, scale 0.1) end where SGD at 0.01 on the
    backbone and SGD at 0.1 on the classifier end, with (Nesterov) momentum, also through a
    LossScaleOptimizer."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(24, 4)).astype("float32"), rng.integers(0, 2, 24)
    model = _tiny()
    optimizer = recipes.BackboneRateSGD(0.1, 0.9, nesterov, backbone_lr_scale=0.1)
    if loss_scale:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy())
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)

    reference = _tiny()
    body = [v for v in reference.trainable_variables if not v.path.startswith("logits/")]
    head = [v for v in reference.trainable_variables if v.path.startswith("logits/")]
    assert body and head
    slow = keras.optimizers.SGD(0.01, 0.9, nesterov)
    fast = keras.optimizers.SGD(0.1, 0.9, nesterov)
    loss = keras.losses.SparseCategoricalCrossentropy()
    for step in range(3):
        part = slice(8 * step, 8 * step + 8)
        with tf.GradientTape() as tape:
            value = loss(y[part], reference(x[part], training=True))
        grads = tape.gradient(value, body + head)
        slow.apply(grads[: len(body)], body)
        fast.apply(grads[len(body) :], head)
    for got, expected in zip(model.trainable_variables, reference.trainable_variables, strict=True):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-6, atol=1e-7)
    moved = _tiny().get_weights()
    assert not np.allclose(model.get_weights()[0], moved[0])  # the backbone did learn


def test_backbone_rate_survives_serialisation():
    optimizer = recipes.BackboneRateSGD(0.05, 0.9, True, backbone_lr_scale=0.25, head=("fc",))
    again = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(again, recipes.BackboneRateSGD)
    assert again.backbone_lr_scale == 0.25 and again.head == ("fc",) and again.nesterov
    recipe = recipes.get_recipe("finetune", "images")
    # A trained network fine-tuned (no ModelInfo): never the papers' gated warm-up.
    schedule = recipes.plan(recipe, model=None, num_examples=320, steps_per_epoch=10)
    assert schedule.gated_lr is None
    assert isinstance(recipes.make_optimizer(recipe, schedule), recipes.BackboneRateSGD)
    plain = recipes.get_recipe("paper", "images")
    assert type(recipes.make_optimizer(plain, schedule)) is keras.optimizers.SGD


@pytest.fixture(scope="module")
def saved_network(tmp_path_factory):
    """A v1 network with ImageNet preprocessing and non-trivial batch-norm statistics, saved."""
    keras.utils.set_random_seed(3)
    model = keras_preact.ResNet(
        8, "v1", input_shape=(32, 32, 3), classes=7, preprocessing="imagenet"
    )
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.2, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2, layer.moving_variance.shape))
    path = tmp_path_factory.mktemp("net") / "base.keras"
    model.save(path)
    return path, model


def test_new_classifier_on_the_same_features_frozen_up_to_a_stage(saved_network):
    path, base = saved_network
    model = finetune.from_file(
        str(path), classes=10, input_shape=(32, 32, 3), weight_decay=1e-4, freeze="stage1"
    )
    assert model.get_layer("logits").kernel.shape == (64, 10)
    assert model.get_layer("predictions").dtype_policy.name == "float32"
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    features = keras.Model(model.inputs, model.get_layer("avg_pool").output)
    expected = keras.Model(base.inputs, base.get_layer("avg_pool").output)
    np.testing.assert_allclose(
        features.predict_on_batch(images), expected.predict_on_batch(images), rtol=1e-5, atol=1e-5
    )
    probabilities = model.predict_on_batch(images)
    assert probabilities.shape == (4, 10) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)

    frozen = {layer.name for layer in model.layers if layer.weights and not layer.trainable}
    trained = {layer.name for layer in model.layers if layer.weights and layer.trainable}
    # Option A's shortcut padding is a fixed 0/1 convolution, never trained.
    pads = {n for n in frozen if n.endswith("_shortcut_pad")}
    assert pads and all(not model.get_layer(n).trainable for n in pads)
    frozen -= pads
    assert frozen and all(n.startswith(("stem_", "stage1_")) for n in frozen)
    assert {n for n in trained if n.startswith(("stem_", "stage1_"))} == set()
    assert "logits" in trained and any(n.startswith("stage3_") for n in trained)
    # The recipe's weight decay is the L2 penalty of every kernel, as on a new network.
    conv = model.get_layer("stage2_unit1_conv1")
    assert conv.kernel_regularizer.l2 == pytest.approx(5e-5)
    penalised = [
        layer
        for layer in model.layers
        if getattr(layer, "kernel_regularizer", None) is not None and layer.trainable
    ]
    assert len(model.losses) == len(penalised) == 5  # frozen kernels are constants: no penalty


def test_other_sizes_precisions_and_bad_stages(saved_network):
    path, _ = saved_network
    bigger = finetune.from_file(str(path), classes=3, input_shape=(48, 48, 3), weight_decay=0)
    assert tuple(bigger.inputs[0].shape) == (None, 48, 48, 3)
    keras.config.set_dtype_policy("mixed_bfloat16")
    mixed = finetune.from_file(str(path), classes=3, input_shape=(32, 32, 3), weight_decay=0)
    keras.config.set_dtype_policy("float32")
    assert mixed.get_layer("stage2_unit1_conv1").compute_dtype == "bfloat16"
    assert mixed.outputs[0].dtype == "float32"
    whole = finetune.from_file(
        str(path), classes=3, input_shape=(32, 32, 3), weight_decay=0, freeze="backbone"
    )
    assert [v.path for v in whole.trainable_variables] == ["logits/kernel", "logits/bias"]
    with pytest.raises(
        UserError, match=r"has no such stage \(it has stem, stage1, stage2, stage3\)"
    ):
        finetune.from_file(
            str(path), classes=3, input_shape=(32, 32, 3), weight_decay=0, freeze="stage4"
        )


def test_plateau_rule_divides_the_rate_after_patience_epochs_without_gain():
    recipe = recipes.get_recipe("paper", "images", schedule="plateau", plateau_patience=2)
    schedule = recipes.plan(
        recipe,
        model=keras_preact.resolve_model("resnet50v1"),
        num_examples=2560,
        steps_per_epoch=10,
    )
    assert schedule.kind == "plateau" and schedule.needs_controller
    assert recipes.compression_note(recipe, schedule, family="images") is None  # 120 epochs
    short = recipe.overridden(epochs=3)
    assert recipes.compression_note(
        short,
        recipes.plan(short, model=None, num_examples=2560, steps_per_epoch=10),
        family="images",
    ) == (
        "recipe 'paper' compressed to 3 epochs (its full length: 120 epochs): lr 0.1, x0.1 after "
        "2 epochs without a lower validation error"
    )
    controller = recipes.LearningRateController(schedule)
    rates = []
    for accuracy in (0.30, 0.40, 0.39, 0.40, 0.41, 0.41, 0.40, 0.40):
        controller.on_epoch_end(0, {"val_accuracy": accuracy})
        rates.append(controller.current_lr())
    peak = 0.05 * 256 / 128
    expected = [peak] * 3 + [peak / 10] * 3 + [peak / 100] * 2
    np.testing.assert_allclose(rates, expected)
    resumed = recipes.LearningRateController(schedule, controller.state())
    assert resumed.current_lr() == pytest.approx(peak / 100)
    assert resumed.best_error == pytest.approx(0.59)
