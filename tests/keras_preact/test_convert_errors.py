"""Bad checkpoints get one clear ValueError, and nothing is loaded: truncated files, unknown layouts,
another depth or width, a v1 checkpoint into a v2 model, arguments the checkpoint needs, tensors
without a place, and pickles that are not weights only (never run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import torch
from convert_helpers import CifarResNet, images, nchw, randomize_torch, torch_logits
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file as save_torch

import keras_preact as kp
from keras_preact import resnet
from keras_preact.convert import convert_checkpoint, inspect_checkpoint
from keras_preact.convert.sources import import_torchvision_models

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def resnet20(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """A PyTorch CIFAR ResNet-20 v1 checkpoint (100 classes) and its network."""
    net = randomize_torch(CifarResNet("v1", 3, classes=100), seed=1)
    path = tmp_path_factory.mktemp("ckpt") / "resnet20.pth"
    torch.save(net.state_dict(), path)
    return path, net


def stems_built(monkeypatch) -> list[str]:
    """The names of the models whose layers are built from now on (their stems, as built)."""
    built = []
    stem = resnet._stem

    def counting(x, arch):
        built.append(arch.default_name)
        return stem(x, arch)

    monkeypatch.setattr(resnet, "_stem", counting)
    return built


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def truncate(path: Path, target: Path) -> Path:
    data = path.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def test_truncated_files_are_refused(resnet20, tmp_path):
    pth, net = resnet20
    cases = {truncate(pth, tmp_path / "half.pth"): "truncated or corrupt"}
    save_torch(net.state_dict(), tmp_path / "whole.safetensors")
    cases[truncate(tmp_path / "whole.safetensors", tmp_path / "half.safetensors")] = (
        "truncated or corrupt"
    )
    source = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=3)
    from keras.src.legacy.saving import legacy_h5_format  # Keras' own writer of the layout

    with h5py.File(tmp_path / "whole.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    cases[truncate(tmp_path / "whole.h5", tmp_path / "half.h5")] = "truncated or corrupt"
    (tmp_path / "empty.pth").write_bytes(b"")
    cases[tmp_path / "empty.pth"] = "the file is empty"
    for path, message in cases.items():
        with pytest.raises(ValueError, match=message) as e:
            kp.ResNet20V1(weights=path, classes=100)
        assert repr(str(path)) in one_line(e)


def test_an_unknown_key_layout_lists_the_layouts_understood(tmp_path):
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 4)).state_dict(), tmp_path / "mlp.pth")
    with pytest.raises(ValueError, match="key layout keras-preact does not know") as e:
        kp.ResNet20V1(weights=tmp_path / "mlp.pth")
    message = one_line(e)
    for layout in ("torchvision resnet18", "timm resnetv2_50", "keras.applications ResNet50",
                   "PyTorch CIFAR"):  # fmt: skip
        assert layout in message
    assert "'0.weight'" in message


def test_another_depth_names_the_argument(resnet20):
    with pytest.raises(ValueError, match=r"needs depth=20 \(the model has depth=32\)") as e:
        kp.ResNet32V1(weights=resnet20[0], classes=100)
    assert "build keras_preact.ResNet20V1()" in one_line(e)


def test_another_width_names_the_first_tensor_and_both_shapes(tmp_path):
    net = CifarResNet("v1", 3)
    state = net.state_dict()
    state["layer2.0.conv1.weight"] = torch.zeros(48, 16, 3, 3)  # a wider second stage
    torch.save(state, tmp_path / "wide.pth")
    with pytest.raises(ValueError) as e:
        kp.ResNet20V1(weights=tmp_path / "wide.pth")
    assert one_line(e) == (
        "checkpoint tensor 'layer2.0.conv1.weight' has shape (48, 16, 3, 3), but resnet20v1's "
        "stage2_unit1_conv1 needs (32, 16, 3, 3): the checkpoint is another depth or width"
    )


def test_a_v1_checkpoint_does_not_load_into_a_v2_model(resnet20):
    with pytest.raises(ValueError, match="a v1 \\(post-activation\\) network; it cannot load") as e:
        kp.get_model("resnet20v2", weights=resnet20[0], classes=100)
    assert "into resnet20v2, a v2 network: build keras_preact.ResNet20V1()" in one_line(e)


def test_torchvision_bottlenecks_need_the_3x3_stride(tmp_path):
    models = import_torchvision_models()
    torch.save(models.resnet50().state_dict(), tmp_path / "resnet50.pth")
    keras.backend.clear_session()
    with pytest.raises(ValueError) as e:
        kp.ResNet50V1(weights=tmp_path / "resnet50.pth")
    assert one_line(e) == (
        f"{str(tmp_path / 'resnet50.pth')!r} holds torchvision resnet50; resnet50v1 needs "
        "bottleneck_stride='3x3' (the model has bottleneck_stride='1x1'): build "
        "keras_preact.ResNet50V1(bottleneck_stride='3x3')"
    )
    # Refused before anything was built.
    assert keras.layers.Conv2D(1, 1).name == "conv2d"


def test_classes_refused_replaced_or_dropped(resnet20):
    path, net = resnet20
    with pytest.raises(ValueError, match="with 100 classes; pass classes=100"):
        kp.ResNet20V1(weights=path)
    _, x = images(4, 32, "cifar10")
    # Another number of classes: a new classifier, every other weight loaded.
    model = kp.ResNet20V1(weights=path, classes=10)
    assert model.get_layer("logits").units == 10
    np.testing.assert_array_equal(
        model.get_layer("stem_conv").kernel.numpy(),
        net.conv1.weight.detach().numpy().transpose(2, 3, 1, 0),
    )
    # No classifier: the features torch's classifier reads, in keras-preact's channel order
    # (akamaster's option A puts the input's channels in the middle, keras-preact's first).
    features = kp.ResNet20V1(weights=path, include_top=False, pooling="avg")
    with torch.no_grad():
        captured = []
        hook = net.linear.register_forward_hook(lambda m, i, o: captured.append(i[0]))
        net(torch.from_numpy(nchw(x)))
        hook.remove()
    order = np.arange(16)
    for width in (32, 64):
        pad = (width - len(order)) // 2
        order = np.concatenate([pad + order, np.setdiff1d(np.arange(width), pad + order)])
    np.testing.assert_allclose(features(x), captured[0].numpy()[:, order], rtol=0, atol=1e-4)


def test_a_tensor_without_a_place_is_refused(resnet20, tmp_path, monkeypatch):
    state = torch.load(resnet20[0], weights_only=True)
    state["layer1.0.se.fc.weight"] = torch.zeros(4, 16)
    torch.save(state, tmp_path / "se.pth")
    built = stems_built(monkeypatch)
    with pytest.raises(ValueError) as e:
        kp.ResNet20V1(weights=tmp_path / "se.pth", classes=100)
    assert one_line(e) == (
        "the checkpoint has 1 tensor(s) the pytorch-cifar layout has no place for in a "
        "keras-preact network: 'layer1.0.se.fc.weight'"
    )
    assert built == []  # refused before anything was built


class _Payload:
    """Unpickling this would create a file: a pickle that is not weights only."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_that_is_not_weights_only_is_refused_and_never_run(resnet20, tmp_path):
    marker = tmp_path / "payload-ran"
    state = torch.load(resnet20[0], weights_only=True)
    torch.save({"state_dict": state, "payload": _Payload(marker)}, tmp_path / "unsafe.pth")
    assert not marker.exists()
    with pytest.raises(ValueError, match="holds Python objects besides tensors") as e:
        kp.ResNet20V1(weights=tmp_path / "unsafe.pth", classes=100)
    message = one_line(e)
    assert "weights_only=True" in message and "(it refers to getattr)" in message, message
    # torch's own advice (load with weights_only=False, allow-list the global) is never repeated.
    for advice in ("weights_only=False", "can still be loaded", "trust", "safe_globals", "\x1b"):
        assert advice not in message, (advice, message)
    assert not marker.exists()


def test_networks_keras_preact_does_not_build_are_refused_by_name(tmp_path):
    state = CifarResNet("v2", 2, bottleneck=True).state_dict()
    state = {k.replace("shortcut.0", "downsample.0"): v for k, v in state.items()}
    torch.save(state, tmp_path / "preresnet.pth")
    with pytest.raises(ValueError, match="bearpaw/pytorch-classification's PreResNet"):
        inspect_checkpoint(tmp_path / "preresnet.pth")

    conv = np.zeros((8, 8, 1, 1), "float32")
    save_numpy(
        {"stem.conv.weight": conv, "stages.0.blocks.0.conv1.weight": conv, "norm.weight": conv[0, 0, 0]},
        tmp_path / "bit.safetensors",
    )  # fmt: skip
    with pytest.raises(ValueError, match="group-norm \\(BiT"):
        inspect_checkpoint(tmp_path / "bit.safetensors")

    with h5py.File(tmp_path / "resnet50v2.h5", "w") as f:
        f.attrs["layer_names"] = [b"conv1_conv", b"conv2_block1_preact_bn", b"post_bn"]
        for layer, weight in (("conv1_conv", "kernel"), ("conv2_block1_preact_bn", "gamma"),
                              ("post_bn", "gamma")):  # fmt: skip
            group = f.create_group(layer)
            group.attrs["weight_names"] = [f"{layer}/{weight}:0".encode()]
            group.create_dataset(f"{layer}/{weight}:0", data=np.zeros(3, "float32"))
    with pytest.raises(ValueError, match=r"keras\.applications weights are a ResNetV2"):
        inspect_checkpoint(tmp_path / "resnet50v2.h5")


def test_units_per_stage_keras_preact_does_not_build_are_named(tmp_path):
    models = import_torchvision_models()
    net = models.resnet.ResNet(models.resnet.BasicBlock, [2, 2, 2, 3])
    torch.save(net.state_dict(), tmp_path / "resnet20.pth")
    with pytest.raises(ValueError) as e:
        inspect_checkpoint(tmp_path / "resnet20.pth")
    assert one_line(e).startswith(
        "the torchvision checkpoint has basic units (2, 2, 2, 3) per stage, a depth keras-preact "
        "does not build (it builds 18 basic (2, 2, 2, 2), 34 basic (3, 4, 6, 3), "
    )

    state = CifarResNet("v1", 3).state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("layer1.2.")}
    torch.save(state, tmp_path / "uneven.pth")
    with pytest.raises(ValueError) as e:
        inspect_checkpoint(tmp_path / "uneven.pth")
    assert one_line(e) == (
        "the PyTorch CIFAR checkpoint has (2, 3, 3) units per stage; keras-preact's CIFAR "
        "networks have the same number in each of the three stages"
    )

    conv = np.zeros((8, 8, 1, 1), "float32")
    blocks = {f"stages.{s}.blocks.0.conv{i}.weight": conv for s in range(4) for i in (1, 2, 3)}
    norm = {"norm.running_var": conv[0, 0, 0]}
    save_numpy({"stem.conv.weight": conv, **blocks, **norm}, tmp_path / "timm.safetensors")
    with pytest.raises(ValueError, match=r"^the timm ResNetV2 checkpoint has bottleneck units "
                       r"\(1, 1, 1, 1\) per stage, a depth keras-preact does not build"):  # fmt: skip
        inspect_checkpoint(tmp_path / "timm.safetensors")


def test_keras_preact_files_still_load_and_other_files_are_named(tmp_path):
    model = kp.ResNet20V1()
    model.save_weights(tmp_path / "own.weights.h5")
    loaded = kp.ResNet20V1(weights=tmp_path / "own.weights.h5")
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])
    (tmp_path / "notes.txt").write_text("not weights")
    with pytest.raises(
        ValueError, match=r"is neither a Keras \.weights\.h5/\.keras file nor a checkpoint"
    ):
        kp.ResNet20V1(weights=tmp_path / "notes.txt")


def test_models_need_none_of_the_converter_packages(tmp_path, resnet20):
    """``import keras_preact`` and building models import none of torch, torchvision, timm and
    safetensors; without torch, a .pth checkpoint is refused by name, a .safetensors one loads."""
    _, net = resnet20
    save_torch(net.state_dict(), tmp_path / "resnet20.safetensors")
    # Imports of torch fail as where it is not installed (a None in sys.modules instead would
    # break SciPy, which looks torch up there).
    code = f"""
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "torchvision", "timm"):
            raise ImportError(f"No module named {{name!r}}")
sys.meta_path.insert(0, NoTorch())
import keras_preact as kp
kp.ResNet20V1()
assert not {{"torch", "torchvision", "timm", "safetensors"}} & set(m for m in sys.modules if sys.modules[m])
kp.ResNet20V1(weights={str(tmp_path / "resnet20.safetensors")!r}, classes=100)
try:
    kp.ResNet20V1(weights={str(resnet20[0])!r}, classes=100)
except ValueError as e:
    print("refused:", e)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"refused: .*is a PyTorch checkpoint; reading it needs torch", result.stdout)


def test_parity_differs_when_the_layout_is_misread(resnet20):
    """The parity check has teeth: two different networks disagree by far more than 1e-4."""
    _, x = images(2, 32, "cifar10")
    conversion = convert_checkpoint(resnet20[0], classifier_activation=None)
    ours = np.asarray(conversion.model(x))
    other = randomize_torch(CifarResNet("v1", 3, classes=100), seed=2)
    assert np.abs(ours - torch_logits(other, x)).max() > 1e-2


def _broken(state: dict, key: str, value) -> dict:
    """``state`` with one tensor replaced (or changed in place when ``value`` is a float)."""
    state = dict(state)
    if isinstance(value, float):
        state[key] = state[key].clone()
        state[key].view(-1)[1] = value
    else:
        state[key] = value
    return state


def test_broken_values_are_refused_naming_the_tensor_before_anything_is_built(
    resnet20, tmp_path, monkeypatch
):
    """NaN, infinite, integer or boolean weights and negative variances never load (not through
    ``weights=``, not through ``convert_checkpoint``): one line naming the file and the tensor,
    before any layer is built. Batch-norm step counters are integers legitimately."""
    state = torch.load(resnet20[0], weights_only=True)
    assert state["bn1.num_batches_tracked"].dtype == torch.int64
    conv = "layer1.0.conv1.weight"
    cases = {
        "nan.pth": (_broken(state, conv, float("nan")), conv, "1 NaN or infinite value"),
        "inf.safetensors": (
            _broken(state, "bn1.running_mean", float("inf")),
            "bn1.running_mean",
            "1 NaN or infinite value",
        ),
        "int.pth": (
            _broken(state, "linear.weight", state["linear.weight"].to(torch.int64)),
            "linear.weight",
            "int64",
        ),
        "bool.pth": (_broken(state, "bn1.weight", state["bn1.weight"] > 0), "bn1.weight", "bool"),
        "double.safetensors": (
            _broken(state, "linear.bias", state["linear.bias"].double() * 1e300),
            "linear.bias",
            "beyond float32",
        ),
        "negative-variance.pth": (
            _broken(state, "bn1.running_var", -state["bn1.running_var"]),
            "bn1.running_var",
            "negative",
        ),
    }
    built = stems_built(monkeypatch)
    for name, (broken, key, problem) in cases.items():
        path = tmp_path / name
        if name.endswith(".safetensors"):
            save_torch(broken, path)
        else:
            torch.save(broken, path)
        for load in (
            lambda p: kp.ResNet20V1(weights=p, classes=100),
            lambda p: convert_checkpoint(p),
        ):
            with pytest.raises(ValueError) as e:
                load(path)
            message = one_line(e)
            assert repr(str(path)) in message and repr(key) in message, message
            assert problem in message, message
    assert built == []  # nothing was built
    kp.ResNet20V1(weights=resnet20[0], classes=100)  # integer step counters are fine
    assert built == ["resnet20v1"]


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
def test_other_files_that_are_not_plain_weights_are_named(resnet20, tmp_path):
    """A TorchScript archive, quantized or sparse tensors, two state dicts side by side, a file
    that cannot be read: one line each, saying what the file is; torch's advice to load with
    weights_only=False is never passed on."""
    state = torch.load(resnet20[0], weights_only=True)
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "script.pt")
    quantized = dict(state)
    quantized["linear.weight"] = torch.quantize_per_tensor(
        state["linear.weight"], 0.1, 0, torch.qint8
    )
    torch.save(quantized, tmp_path / "quantized.pth")
    sparse = dict(state, **{"linear.weight": state["linear.weight"].to_sparse()})
    torch.save(sparse, tmp_path / "sparse.pth")
    torch.save({"student": state, "teacher": state, "epoch": 3}, tmp_path / "two.pth")
    torch.save({"epoch": 3, "best": [0.9]}, tmp_path / "metrics.pth")
    cases = {
        tmp_path / "script.pt": "is a TorchScript archive (torch.jit.save), which holds code",
        tmp_path / "quantized.pth": "tensor 'linear.weight' (torch.qint8, torch.strided) is not a plain array",
        tmp_path / "sparse.pth": "tensor 'linear.weight' (torch.float32, torch.sparse_coo) is not a plain array",
        tmp_path / "two.pth": "holds several state dicts ('student', 'teacher')",
        tmp_path / "metrics.pth": "holds no state dict (a mapping of names to tensors, at its top level or under a key such as 'state_dict', 'model_state_dict', 'model', 'net'): it holds {'epoch': int, 'best': list}",
        Path("/proc/self/mem"): "cannot read checkpoint '/proc/self/mem': Input/output error",
    }  # fmt: skip
    for path, problem in cases.items():
        with pytest.raises(ValueError) as e:
            kp.ResNet20V1(weights=path, classes=100)
        message = one_line(e)
        assert problem in message and "weights_only=False" not in message, message


def test_a_state_dict_under_another_key_or_in_half_precision_converts(resnet20, tmp_path):
    """One mapping of tensors under any key, a few levels deep, is the state dict; float16 and
    bfloat16 tensors are upcast exactly, from .pth and from .safetensors (read without torch)."""
    path, net = resnet20
    state = torch.load(path, weights_only=True)
    torch.save({"ema": {"weights": state}, "epoch": 3}, tmp_path / "nested.pth")
    kernel = net.conv1.weight.detach().numpy().transpose(2, 3, 1, 0)
    model = kp.ResNet20V1(weights=tmp_path / "nested.pth", classes=100)
    np.testing.assert_array_equal(model.get_layer("stem_conv").kernel.numpy(), kernel)

    for dtype in (torch.float16, torch.bfloat16):
        half = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        torch.save(half, tmp_path / "half.pth")
        save_torch(half, tmp_path / "half.safetensors")
        expected = half["conv1.weight"].float().numpy().transpose(2, 3, 1, 0)
        for name in ("half.pth", "half.safetensors"):
            keras.backend.clear_session()
            model = kp.ResNet20V1(weights=tmp_path / name, classes=100)
            np.testing.assert_array_equal(model.get_layer("stem_conv").kernel.numpy(), expected)
    # bfloat16 safetensors, where nothing has taught NumPy the type yet (no torch, no Keras).
    code = f"""
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "tensorflow", "keras", "jax"):
            raise ImportError(name)
sys.meta_path.insert(0, NoTorch())
from keras_preact.convert.readers import read_checkpoint
tensors = read_checkpoint({str(tmp_path / "half.safetensors")!r}).tensors
print(tensors["conv1.weight"].dtype, float(abs(tensors["conv1.weight"]).sum()))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    dtype, total = result.stdout.split()
    assert dtype == "float32" and float(total) == pytest.approx(float(np.abs(expected).sum()))
