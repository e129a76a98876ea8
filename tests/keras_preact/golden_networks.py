"""Golden records of the networks: what every named factory and every ablation option builds.

Each network is recorded by its ordered layer names, layer classes and parameter counts, and by
its outputs on a fixed input for fixed weights (set from each layer's name, so that they do not
depend on the order in which layers are created). ``test_golden_networks.py`` rebuilds each one
and compares; the records were made with keras-preact 0.2, so the test proves a change of the
builder's code leaves the networks exactly as they were.

A few small networks are also kept as ``.keras`` files saved by keras-preact 0.2, with the same
weights, re-packed with deflate compression (Keras stores members uncompressed; it reads either):
the weights are a few distinct values per tensor, so the files stay small.

Regenerate (only when a network is meant to change, and say so in the commit)::

    PYTHONPATH=$PWD python tests/keras_preact/golden_networks.py
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import zipfile
import zlib
from pathlib import Path
from typing import Any

import keras
import numpy as np

import keras_preact as kp
from keras_preact import resnet, units

DATA = Path(__file__).resolve().parent / "data"
GOLDEN = DATA / "golden_networks.json"
KERAS_FILES = DATA / "keras-0.2"
SAVED = (  # network ids kept as .keras files saved by keras-preact 0.2
    "cifar-basic-v1-none",
    "cifar-basic-v1",
    "cifar-basic-v2",
    "cifar-bottleneck-v2",
    "cross-bn_after_add-exclusive_gating-B",
    "cross-relu_preact-dropout-C",
    "cross-relu_before_add-scaling-A",
    "cross-full_preact-conv-A",
)
LISTED_LAYERS = 100
LISTED = ("factory-", "cifar-")
"""The named networks of at most 100 layers and the CIFAR networks with one option each are stored
layer by layer (a failure shows which layer); the others by a hash of the same listing (they
repeat the units that the listed ones show)."""

# The deepest CIFAR networks take minutes to build: the deep-model tests cover them.
SKIPPED_FACTORIES = ("ResNet1001V2", "ResNet1202V1")
SMALL = {  # (family, unit) -> the smallest depth, and the input of the ablation networks
    ("cifar", "basic"): (8, None),
    ("cifar", "bottleneck"): (11, None),
    ("imagenet", "basic"): (18, (32, 32, 3)),
    ("imagenet", "bottleneck"): (50, (32, 32, 3)),
}


def networks() -> dict[str, dict[str, Any]]:
    """Network id -> ``{"call": factory name or "ResNet", "args": [...], "kwargs": {...}}``."""
    nets: dict[str, dict[str, Any]] = {}

    def add(key: str, call: str, *args: Any, **kwargs: Any) -> None:
        nets[key] = {"call": call, "args": list(args), "kwargs": kwargs}

    for name in kp.FACTORY_NAMES:
        if name not in SKIPPED_FACTORIES:
            add(f"factory-{name}", name)
    # Heads, inputs and the other builder arguments.
    for pooling in (None, "avg", "max"):
        add(f"head-resnet20v1-notop-{pooling}", "ResNet20V1", include_top=False, pooling=pooling)
        add(
            f"head-resnet50v2-notop-{pooling}",
            "ResNet50V2",
            include_top=False,
            pooling=pooling,
            input_shape=[64, 64, 3],
        )
    add("head-resnet20v1-top-avg", "ResNet20V1", pooling="avg")
    add("head-resnet20v1-logits", "ResNet20V1", classes=100, classifier_activation=None)
    add("head-resnet164v2-notop", "ResNet164V2", include_top=False)
    add("input-resnet20v1-40x48x1", "ResNet20V1", input_shape=[40, 48, 1], classes=3)
    add("preprocess-resnet20v1-cifar10", "ResNet20V1", preprocessing="cifar10")
    add("preprocess-resnet18v1-imagenet", "ResNet18V1", preprocessing="imagenet")
    add("width-resnet8v2-x2", "ResNet", 8, "v2", width_multiplier=2)
    add("decay-resnet8v1", "ResNet", 8, "v1", weight_decay=1e-4)
    # Every option of the v2 paper's ablations, one at a time, on the smallest network of
    # each family and unit, from both versions' defaults.
    for (family, unit), (depth, shape) in SMALL.items():
        base = {"family": family, "unit": unit, "input_shape": list(shape) if shape else None}
        for version in resnet.VERSIONS:
            prefix = f"{family}-{unit}-{version}"
            add(prefix, "ResNet", depth, version, **base)
            for placement in kp.PLACEMENTS:
                add(f"{prefix}-{placement}", "ResNet", depth, version, placement=placement, **base)
            for shortcut in kp.SHORTCUTS:
                add(f"{prefix}-{shortcut}", "ResNet", depth, version, shortcut=shortcut, **base)
            for projection in kp.PROJECTIONS:
                add(f"{prefix}-proj{projection}", "ResNet", depth, version, **base,
                    projection=projection)  # fmt: skip
            if unit == "bottleneck":
                for stride in units.BOTTLENECK_STRIDES:
                    add(f"{prefix}-stride{stride}", "ResNet", depth, version, **base,
                        bottleneck_stride=stride)  # fmt: skip
    # Every combination of placement, shortcut and projection (ResNet-8), and of placement,
    # shortcut and bottleneck stride (ResNet-11 with bottlenecks).
    for placement in kp.PLACEMENTS:
        for shortcut in kp.SHORTCUTS:
            for projection in kp.PROJECTIONS:
                add(f"cross-{placement}-{shortcut}-{projection}", "ResNet", 8, "v1",
                    placement=placement, shortcut=shortcut, projection=projection)  # fmt: skip
            for stride in units.BOTTLENECK_STRIDES:
                add(f"cross-bottleneck-{placement}-{shortcut}-{stride}", "ResNet", 11, "v2",
                    unit="bottleneck", placement=placement, shortcut=shortcut,
                    bottleneck_stride=stride)  # fmt: skip
    return nets


def build(spec: dict[str, Any], fixed_weights: bool = True) -> keras.Model:
    """Build a network as recorded, with its fixed weights unless told otherwise."""
    kwargs = dict(spec["kwargs"])
    if kwargs.get("input_shape") is not None:
        kwargs["input_shape"] = tuple(kwargs["input_shape"])
    call = kp.ResNet if spec["call"] == "ResNet" else getattr(kp, spec["call"])
    model = call(*spec["args"], **kwargs)
    if fixed_weights:
        set_fixed_weights(model)
    return model


def set_fixed_weights(model: keras.Model) -> None:
    """Weights drawn from each layer's name: a few distinct values per tensor, small enough that
    the deepest networks' activations stay in range in inference mode."""
    for layer in model.layers:
        if not layer.trainable or not isinstance(
            layer, keras.layers.Conv2D | keras.layers.BatchNormalization | keras.layers.Dense
        ):
            continue  # option A's fixed 0/1 kernel, the preprocessing constants
        rng = np.random.default_rng(zlib.crc32(layer.name.encode()))
        values = []
        for weight in layer.weights:
            shape = tuple(weight.shape)
            role = weight.path.rsplit("/", 1)[-1]
            if role == "kernel":
                scale = 0.5 / math.sqrt(math.prod(shape[:-1]))
                value = rng.integers(-1, 2, shape) * scale
            elif role == "gamma":
                value = 0.5 + rng.integers(0, 5, shape) / 8
            elif role == "moving_variance":
                value = 0.5 + rng.integers(0, 9, shape) / 8
            else:  # beta, moving_mean, bias
                value = rng.integers(-2, 3, shape) / 16
            values.append(value.astype("float32"))
        layer.set_weights(values)


def fixed_input(model: keras.Model) -> np.ndarray:
    """Two images for the model's input: noise in [-2, 2) over a ramp from -2 to 2 that runs down
    in the first and across in the second; the same as [0, 255] pixels where the model
    standardises them."""
    shape = model.input_shape[1:]
    rows, cols = (0, 1) if keras.config.image_data_format() == "channels_last" else (1, 2)
    x = np.random.default_rng(0).uniform(-2, 2, (2, *shape))
    x[0] += np.expand_dims(np.linspace(-2, 2, shape[rows]), tuple({0, 1, 2} - {rows}))
    x[1] += np.expand_dims(np.linspace(-2, 2, shape[cols]), tuple({0, 1, 2} - {cols}))
    if "preprocess" in {layer.name for layer in model.layers}:
        x = (x + 4) / 8 * 255
    return x.astype("float32")


def outputs(model: keras.Model) -> dict[str, np.ndarray]:
    """The model's output for the fixed input; with a classifier, its logits (the softmax of
    nearly even logits says less)."""
    if "logits" in {layer.name for layer in model.layers}:
        model = keras.Model(model.inputs, model.get_layer("logits").output)
        name = "logits"
    else:
        name = "output"
    values = model([fixed_input(model)], training=False)
    return {name: keras.ops.convert_to_numpy(values)}


def fingerprint(values: np.ndarray) -> dict[str, Any]:
    """Shape, sums and 16 evenly spread values of an output (floats at 7 significant digits).

    Numbers rather than a hash of the bytes: a different CPU or backend sums in another order
    and differs in the last bits, which a tolerance absorbs and a hash would not.
    """
    flat = values.astype("float64").ravel()
    picks = np.linspace(0, flat.size - 1, min(16, flat.size)).astype(int)
    return {
        "shape": list(values.shape),
        "sum": float(f"{flat.sum():.7g}"),
        "abs_sum": float(f"{np.abs(flat).sum():.7g}"),
        "values": [float(f"{v:.7g}") for v in flat[picks]],
    }


def layer_listing(model: keras.Model) -> list[str]:
    """``name Class parameters`` for every layer, in the model's order."""
    return [f"{la.name} {type(la).__name__} {la.count_params()}" for la in model.layers]


def record(model: keras.Model) -> dict[str, Any]:
    """What the golden file holds for one network."""
    listing = layer_listing(model)
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    total = sum(math.prod(w.shape) for w in model.weights)
    entry: dict[str, Any] = {
        "name": model.name,
        "layer_count": len(listing),
        "layers_sha256": hashlib.sha256("\n".join(listing).encode()).hexdigest(),
        "params": {"total": total, "trainable": trainable},
        "outputs": {k: fingerprint(v) for k, v in outputs(model).items()},
    }
    return entry


def main() -> None:
    DATA.mkdir(exist_ok=True)
    shutil.rmtree(KERAS_FILES, ignore_errors=True)
    KERAS_FILES.mkdir()
    golden: dict[str, Any] = {
        "made_with": {"keras_preact": kp.__version__, "keras": keras.__version__},
        "networks": {},
    }
    for key, spec in networks().items():
        keras.backend.clear_session()
        model = build(spec)
        entry = golden["networks"][key] = {"spec": spec, **record(model)}
        if entry["layer_count"] <= LISTED_LAYERS and key.startswith(LISTED):
            entry["layers"] = layer_listing(model)
        if key in SAVED:
            save(model, KERAS_FILES / f"{key}.keras")
        print(key, entry["layer_count"], flush=True)
    write(golden)


def write(golden: dict[str, Any]) -> None:
    """The golden file, one network a line."""
    lines = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in golden["networks"].items()]
    GOLDEN.write_text(
        f'{{"made_with": {json.dumps(golden["made_with"])},\n"networks": {{\n'
        + ",\n".join(lines)
        + "\n}}\n"
    )


def save(model: keras.Model, path: Path) -> None:
    """Save a ``.keras`` file, deflated."""
    model.save(path)
    deflate(path)


def deflate(path: Path) -> None:
    """Re-pack a zip file with deflate compression (members, names and order unchanged)."""
    packed = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), zipfile.ZIP_DEFLATED, 9)
    packed.replace(path)


if __name__ == "__main__":
    main()
