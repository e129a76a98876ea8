"""The networks keras-preact builds, as data: families, the depth table and the named models.

Plain Python, without Keras: ``import keras_preact``, ``keras_preact.convert`` and
``keras_preact.weights`` read the names and tables here without loading Keras (so their command
lines answer ``--help`` at once), and ``keras_preact.resnet`` builds the networks from them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

FAMILIES = ("cifar", "imagenet")
VERSIONS = ("v1", "v2")
UNITS = ("basic", "bottleneck")

# Units per stage of the ImageNet networks (Table 1 of the v1 paper, ResNet-200 from the v2 paper).
IMAGENET_DEPTHS: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
STAGE_WIDTHS = {"cifar": (16, 32, 64), "imagenet": (64, 128, 256, 512)}
# CIFAR depth = (layers per unit) · 3 stages · n + 2: 6n+2 for basic units, 9n+2 for bottlenecks.
CIFAR_LAYERS_PER_UNIT = {"basic": 2, "bottleneck": 3}
MIN_INPUT_SIZE = {"cifar": 8, "imagenet": 32}
DEFAULT_INPUT_SIZE = {"cifar": 32, "imagenet": 224}
DEFAULT_CLASSES = {"cifar": 10, "imagenet": 1000}


# Per-channel mean and standard deviation of the training images, in [0, 1] units (RGB).
DATASET_STATS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "cifar10": ((0.49139968, 0.48215841, 0.44653091), (0.24703223, 0.24348513, 0.26158784)),
    "cifar100": ((0.50707516, 0.48654887, 0.44091784), (0.26733429, 0.25643846, 0.27615047)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # ImageNet weights trained on other normalisations (see keras_preact.convert):
    # pixels scaled to [-1, 1] (timm's resnetv2 weights; Inception's preprocessing) ...
    "imagenet_inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    # ... and the RGB mean subtracted, no scaling (keras.applications' ResNets, "caffe" mode).
    "imagenet_caffe": (
        (123.68 / 255.0, 116.779 / 255.0, 103.939 / 255.0),
        (1.0 / 255.0, 1.0 / 255.0, 1.0 / 255.0),
    ),
    # The CIFAR statistics chenyaofo/pytorch-cifar-models trained with (its conf/cifar10.conf and
    # conf/cifar100.conf; the CIFAR-10 standard deviations are the widely copied 0.2023, ...).
    "cifar10_chenyaofo": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100_chenyaofo": ((0.5070, 0.4865, 0.4409), (0.2673, 0.2564, 0.2761)),
}


def check_choice(what: str, value: Any, allowed: Sequence[Any]) -> None:
    """A ValueError naming ``value`` and what is allowed, unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(
            f"unknown {what} {value!r}; expected one of {', '.join(map(repr, allowed))}"
        )


def units_per_stage(
    family: str, depth: int, unit: str | None = None
) -> tuple[str, tuple[int, ...]]:
    """Resolve ``(unit, units per stage)`` for a depth, raising ValueError for impossible ones.

    >>> units_per_stage("cifar", 164, "bottleneck")
    ('bottleneck', (18, 18, 18))
    """
    check_choice("family", family, FAMILIES)
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"depth must be a positive integer, got {depth!r}")
    if family == "imagenet":
        if depth not in IMAGENET_DEPTHS:
            raise ValueError(
                f"ImageNet ResNets have depth 18, 34, 50, 101, 152 or 200, got {depth!r}"
            )
        table_unit, counts = IMAGENET_DEPTHS[depth]
        if unit is not None and unit != table_unit:
            raise ValueError(f"ImageNet ResNet-{depth} uses {table_unit} units, got unit={unit!r}")
        return table_unit, counts
    unit = unit or "basic"
    check_choice("unit", unit, UNITS)
    per_unit = CIFAR_LAYERS_PER_UNIT[unit]
    n, rest = divmod(depth - 2, 3 * per_unit)
    if rest or n < 1:
        form = f"{3 * per_unit}n+2"
        valid = ", ".join(str(3 * per_unit * k + 2) for k in (1, 2, 3, 4, 5))
        raise ValueError(
            f"CIFAR ResNets with {unit} units have depth {form} ({valid}, ...), got {depth!r}"
        )
    return unit, (n, n, n)


def default_options(family: str, version: str) -> dict[str, str]:
    """The architecture options ``keras_preact.ResNet`` builds when they are not given.

    v1: the original post-activation units; v2: full pre-activation. The v1 CIFAR networks use
    parameter-free option A shortcuts, everything else projects (B) where needed. Bottlenecks
    stride on the first 1×1 in v1, as the released v1 models (and its FLOPs table) do, and on the
    3×3 in v2, as the v2 paper's code does.

    >>> default_options("cifar", "v1")["projection"]
    'A'
    """
    return {
        "placement": "original" if version == "v1" else "full_preact",
        "shortcut": "identity",
        "projection": "A" if (family, version) == ("cifar", "v1") else "B",
        "bottleneck_stride": "1x1" if version == "v1" else "3x3",
    }


@dataclasses.dataclass(frozen=True)
class NamedNetwork:
    """A network by name: what it is and what the papers report for it.

    ``keras_preact.ModelInfo`` is this record with ``build``.
    """

    name: str
    family: str
    version: str
    depth: int
    unit: str
    shortcut: str = "identity"
    paper_params_m: float | None = None
    paper_cifar10_error: float | None = None
    paper_gmacs: float | None = None
    paper_warmup: bool = False
    """The papers trained it with lr 0.01 until the training error fell below 80 % (ResNet-110
    and ResNet-1001 on CIFAR), then with the recipe's rate."""

    @property
    def key(self) -> str:
        """The lower-case name ``get_model`` and ``--model`` take."""
        return self.name.lower()

    @property
    def plain(self) -> bool:
        """Whether this is a plain network (no shortcuts)."""
        return self.shortcut == "none"


def _imagenet(depth: int, version: str) -> NamedNetwork:
    gmacs = {18: 1.8, 34: 3.6, 50: 3.8, 101: 7.6, 152: 11.3}.get(depth) if version == "v1" else None
    unit = IMAGENET_DEPTHS[depth][0]
    return NamedNetwork(
        f"ResNet{depth}{version.upper()}", "imagenet", version, depth, unit, paper_gmacs=gmacs
    )


NETWORKS: dict[str, NamedNetwork] = {
    network.key: network
    for network in (
        NamedNetwork("ResNet20V1", "cifar", "v1", 20, "basic", paper_params_m=0.27, paper_cifar10_error=8.75),
        NamedNetwork("ResNet32V1", "cifar", "v1", 32, "basic", paper_params_m=0.46, paper_cifar10_error=7.51),
        NamedNetwork("ResNet44V1", "cifar", "v1", 44, "basic", paper_params_m=0.66, paper_cifar10_error=7.17),
        NamedNetwork("ResNet56V1", "cifar", "v1", 56, "basic", paper_params_m=0.85, paper_cifar10_error=6.97),
        NamedNetwork("ResNet110V1", "cifar", "v1", 110, "basic", paper_params_m=1.7, paper_cifar10_error=6.43, paper_warmup=True),
        NamedNetwork("ResNet1202V1", "cifar", "v1", 1202, "basic", paper_params_m=19.4, paper_cifar10_error=7.93),
        NamedNetwork("ResNet110V2", "cifar", "v2", 110, "basic", paper_params_m=1.7, paper_cifar10_error=6.37, paper_warmup=True),
        NamedNetwork("ResNet164V2", "cifar", "v2", 164, "bottleneck", paper_params_m=1.7, paper_cifar10_error=5.46),
        NamedNetwork("ResNet1001V2", "cifar", "v2", 1001, "bottleneck", paper_params_m=10.2, paper_cifar10_error=4.92, paper_warmup=True),
        *(_imagenet(depth, version) for version in VERSIONS for depth in IMAGENET_DEPTHS),
        *(NamedNetwork(f"Plain{depth}V1", "cifar", "v1", depth, "basic", "none") for depth in (20, 32, 44, 56, 110)),
        *(NamedNetwork(f"Plain{depth}V1", "imagenet", "v1", depth, "basic", "none") for depth in (18, 34)),
    )
}  # fmt: skip
"""The named networks of both papers, by lower-case name (``keras_preact.MODELS`` builds them)."""

MODEL_NAMES: tuple[str, ...] = tuple(NETWORKS)
"""The lower-case names ``get_model`` and ``--model`` take: ``resnet20v1`` ... ``plain34v1``."""

FACTORY_NAMES: tuple[str, ...] = tuple(network.name for network in NETWORKS.values())
"""The named factories (``keras_preact.ResNet50V1``, ...), one per named network."""

_GENERIC_NAME = re.compile(r"^(resnet|plain)(\d+)(v[12])$")


def resolve_network(name: str, unit: str | None = None) -> NamedNetwork:
    """The named network ``name``, or ``resnet<DEPTH>v<1|2>`` / ``plain<DEPTH>v<1|2>`` for any
    valid CIFAR depth (case-insensitive; see ``keras_preact.resolve_model``)."""
    key = name.lower() if isinstance(name, str) else None
    if key in NETWORKS:
        network = NETWORKS[key]
        if unit is not None and unit != network.unit:
            raise ValueError(f"{network.name} uses {network.unit} units, got unit={unit!r}")
        return network
    match = _GENERIC_NAME.match(key or "")
    if not match:
        raise ValueError(
            f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}, "
            "or resnet<DEPTH>v<1|2> / plain<DEPTH>v<1|2> for any CIFAR depth"
        )
    kind, depth, version = match.group(1), int(match.group(2)), match.group(3)
    try:
        unit, _ = units_per_stage("cifar", depth, unit)
    except ValueError as e:
        raise ValueError(f"unknown model {name!r}: {e}") from None
    title = f"{'Plain' if kind == 'plain' else 'ResNet'}{depth}{version.upper()}"
    return NamedNetwork(
        title, "cifar", version, depth, unit, "none" if kind == "plain" else "identity"
    )
