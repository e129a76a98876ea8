"""Source networks for the converter tests: randomly initialised, batch-norm statistics randomised,
saved in the formats the sources publish; the PyTorch CIFAR layouts written here."""

from __future__ import annotations

import h5py
import keras
import numpy as np
import torch
import torch.nn.functional as F
from model_helpers import randomize_batch_norm
from torch import nn

from keras_preact.convert.parity import sample_images

TOLERANCE = 1e-4  # max |Δ logits| in float32


def randomize_torch(net: nn.Module, seed: int, images: np.ndarray | None = None) -> nn.Module:
    """Random batch-norm statistics and affine parameters, classifier scaled so the logits of
    ``images`` (NCHW, normalised) reach a few units (an absolute tolerance then means something)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
                m.num_batches_tracked.fill_(1234)
    net.eval()
    if images is not None:
        with torch.no_grad():
            peak = net(torch.from_numpy(images)).abs().max().item()
            head = _classifier(net)
            head.weight.mul_(4.0 / peak)
            head.bias.mul_(4.0 / peak)
    return net


def _classifier(net: nn.Module) -> nn.Module:
    for name in ("fc", "linear"):
        if hasattr(net, name):
            return getattr(net, name)
    return net.head.fc  # timm


def torch_logits(net: nn.Module, images_nhwc: np.ndarray) -> np.ndarray:
    """Logits of NHWC float32 images (already normalised)."""
    with torch.no_grad():
        return net(torch.from_numpy(nchw(images_nhwc))).numpy()


def nchw(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


def keras_logits(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """The ``logits`` layer's output (before any softmax)."""
    logits = keras.Model(model.input, model.get_layer("logits").output)
    return np.asarray(logits(images, training=False))


def images(count: int, size: int, stats: str = "imagenet") -> tuple[np.ndarray, np.ndarray]:
    """Real images (the embedded sample, resized with Pillow): raw pixels and normalised."""
    from keras_preact import preprocess_input

    pixels = sample_images(count, (size, size))
    return pixels, preprocess_input(pixels, stats)


def assert_parity(ours: np.ndarray, theirs: np.ndarray, tolerance: float = TOLERANCE) -> float:
    """Logits agree to ``tolerance`` and are not trivially small; returns max |Δ|."""
    assert np.abs(theirs).max() > 1.0, "the comparison must not be between near-zero logits"
    diff = float(np.abs(ours - theirs).max())
    assert diff <= tolerance, f"max |Δ logits| {diff:.2e} > {tolerance:.0e}"
    return diff


# ------------------------------------------------------------------------------------------------
# keras.applications: the legacy HDF5 layout Keras caches its weights in.


def randomize_keras(model: keras.Model, seed: int) -> keras.Model:
    """Random batch-norm statistics and affine parameters, and random convolution biases."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            randomize_batch_norm(layer, rng)
        elif isinstance(layer, keras.layers.Conv2D) and layer.use_bias:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.2, bias.shape).astype("float32")])
    return model


def save_keras2_h5(model: keras.Model, path) -> None:
    """Write ``model``'s weights as Keras 2 wrote them, the layout of the files keras.applications
    downloads (``resnet50_weights_tf_dim_ordering_tf_kernels.h5``): ``layer_names``, ``backend``
    and ``keras_version`` on the root; per layer a group whose ``weight_names`` are
    ``conv1_conv/kernel:0``..., each an array at that path inside the group."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode("utf8") for layer in model.layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer in model.layers:
            group = f.create_group(layer.name)
            names = [f"{layer.name}/{w.path.rsplit('/', 1)[-1]}:0" for w in layer.weights]
            group.attrs["weight_names"] = [n.encode("utf8") for n in names]
            for name, value in zip(names, layer.get_weights(), strict=True):
                group.create_dataset(name, data=value)


# ------------------------------------------------------------------------------------------------
# The PyTorch CIFAR layouts, written as their codes write them.


class LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def unit_convs(cin, planes, stride, bottleneck):
    """``(cout, [(in, out, kernel, stride), ...])``: the convolutions of a CIFAR unit, 3×3 and 3×3
    (basic) or 1×1, 3×3 with the stride, 1×1 to 4× ``planes`` (bottleneck)."""
    cout = planes * (4 if bottleneck else 1)
    kernels = (1, 3, 1) if bottleneck else (3, 3)
    widths = (cin, planes, planes, cout) if bottleneck else (cin, planes, cout)
    strides = (1, stride, 1) if bottleneck else (stride, 1)
    return cout, list(zip(widths[:-1], widths[1:], kernels, strides, strict=True))


class CifarBlockV1(nn.Module):
    """akamaster/pytorch_resnet_cifar10's BasicBlock (option A: zeros split before and after;
    option B: ``shortcut.0`` 1×1 conv, ``shortcut.1`` BN); a bottleneck with the stride on the 3×3."""

    def __init__(self, cin, planes, stride, option, bottleneck, zeros="split"):
        super().__init__()
        cout, convs = unit_convs(cin, planes, stride, bottleneck)
        for i, (c_in, c_out, k, s) in enumerate(convs, start=1):
            setattr(self, f"conv{i}", nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(c_out))
        self.n = len(convs)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            if option == "A":
                before = (cout - cin) // 2 if zeros == "split" else 0
                after = cout - cin - before
                self.shortcut = LambdaLayer(
                    lambda x: F.pad(x[:, :, ::stride, ::stride], (0, 0, 0, 0, before, after))
                )
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )

    def forward(self, x):
        out = x
        for i in range(1, self.n + 1):
            out = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(out))
            if i < self.n:
                out = F.relu(out)
        return F.relu(out + self.shortcut(x))


class CifarBlockV2(nn.Module):
    """The pre-activation unit: BN-ReLU-conv; the projection (``shortcut.0``) and, in the first
    unit, the identity take the pre-activated input (He et al.'s code)."""

    def __init__(self, cin, planes, stride, bottleneck, first):
        super().__init__()
        cout, convs = unit_convs(cin, planes, stride, bottleneck)
        for i, (c_in, c_out, k, s) in enumerate(convs, start=1):
            setattr(self, f"bn{i}", nn.BatchNorm2d(c_in))
            setattr(self, f"conv{i}", nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False))
        self.n, self.first = len(convs), first
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False))

    def forward(self, x):
        act = F.relu(self.bn1(x))
        out = self.conv1(act)
        for i in range(2, self.n + 1):
            out = getattr(self, f"conv{i}")(F.relu(getattr(self, f"bn{i}")(out)))
        if hasattr(self, "shortcut"):
            return out + self.shortcut(act)
        return out + (act if self.first else x)


class CifarResNet(nn.Module):
    """conv1 [bn1] layer1-3 [bn] linear, as akamaster (v1) and the pre-activation codes (v2)."""

    def __init__(self, version, n, bottleneck=False, option="A", classes=10, zeros="split"):
        super().__init__()
        self.version = version
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        if version == "v1":
            self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for s, planes in enumerate((16, 32, 64), start=1):
            blocks = []
            for u in range(n):
                stride = 2 if (s > 1 and u == 0) else 1
                if version == "v1":
                    block = CifarBlockV1(cin, planes, stride, option, bottleneck, zeros)
                else:
                    block = CifarBlockV2(cin, planes, stride, bottleneck, first=(s == 1 and u == 0))
                blocks.append(block)
                cin = planes * (4 if bottleneck else 1)
            setattr(self, f"layer{s}", nn.Sequential(*blocks))
        if version == "v2":
            self.bn = nn.BatchNorm2d(cin)
        self.linear = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.conv1(x)
        if self.version == "v1":
            x = F.relu(self.bn1(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        if self.version == "v2":
            x = F.relu(self.bn(x))
        return self.linear(x.mean(dim=(2, 3)))
