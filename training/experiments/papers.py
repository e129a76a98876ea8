"""The papers' CIFAR experiments as data: which networks each trains, and what the papers report.

Errors in % on the CIFAR test set, from the v1 paper (He et al., "Deep Residual Learning for Image
Recognition", 2015: Table 6, Fig. 6) and the v2 paper (He et al., "Identity Mappings in Deep
Residual Networks", 2016: Tables 1-3, Fig. 1, 3, 6); "fail" is the v2 paper's word for a test error
above 20 %. Nothing heavy is imported (no Keras), so listing an experiment is instant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FAIL = "fail (> 20 %)"
"""The v2 paper's entry for a network whose test error is above 20 %."""

V1 = "v1 paper"
V2 = "v2 paper"


@dataclass(frozen=True)
class Run:
    """One network of an experiment: one ordinary training run, one row of the table.

    ``name``: its folder under ``--output``, what ``--runs`` takes. ``paper_error``: the paper's
    test error in % (``None`` where it reports none, as for "fail": ``paper_note`` says so).
    ``quick``: trained at the quick scale without ``--runs``. ``twin``: the plain network a
    residual one is compared with."""

    name: str
    label: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)
    dataset: str = "cifar10"
    paper_error: float | None = None
    paper_note: str = ""
    quick: bool = True
    twin: str | None = None


@dataclass(frozen=True)
class Unexpressible:
    """A row of the paper's table that no option of ``keras_preact`` builds: shown, never trained."""

    label: str
    paper_error: float | None
    paper_note: str
    reason: str
    dataset: str = "cifar10"


@dataclass(frozen=True)
class Panel:
    """One panel of the figure: a title and the runs drawn in it (in this order)."""

    title: str
    runs: tuple[str, ...]


@dataclass(frozen=True)
class Experiment:
    """One of the papers' experiments (see the module docstring).

    ``curves``: ``"error"`` or ``"loss"``, the v1 or the v2 paper's figures (as
    ``training.run.report.draw`` draws them). ``warmup``: the error-gated warm-up at the paper
    scale, ``auto`` (ResNet-110 only, as the v1 paper) or ``on`` (every run, as the v2 paper).
    ``check`` names the finding the summary line checks (``training.experiments.tables.FINDINGS``).
    """

    name: str
    title: str
    source: str
    runs: tuple[Run, ...]
    panels: tuple[Panel, ...]
    curves: str = "error"
    warmup: str = "auto"
    unexpressible: tuple[Unexpressible, ...] = ()
    notes: tuple[str, ...] = ()
    check: str | None = None

    def run(self, name: str) -> Run:
        """The run called ``name`` (``KeyError`` if there is none)."""
        return {run.name: run for run in self.runs}[name]

    @property
    def run_names(self) -> tuple[str, ...]:
        """Every run's name, in table order."""
        return tuple(run.name for run in self.runs)


@dataclass(frozen=True)
class Scale:
    """How every run of an experiment trains: a named recipe with overrides, augmentation, and the
    data (``sample``: the embedded 1,000-image CIFAR-10 sample unless a data source is given)."""

    name: str
    description: str
    recipe: str
    overrides: dict[str, Any]
    augment: bool
    sample: bool
    seed: int | None


_PAPER = (
    "the papers' recipe and length: SGD momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided "
    "by 10 at 32k and 48k iterations, 64k iterations (164 epochs), pad-and-crop and flip "
    "augmentation, on the full CIFAR-10/100 training sets"
)
_QUICK = (
    "a CPU-sized run, not the paper's setting: 15 epochs at batch 50 on the embedded 1,000-image "
    "CIFAR-10 sample (or the data source given), the paper's lr scaled to the batch "
    "(0.1 x 50/128 = 0.039) and kept constant, no augmentation, no warm-up"
)
_QUICK_RECIPE = {"epochs": 15, "batch_size": 50, "lr": 0.1, "lr_decay_factor": 1.0}
SCALES: dict[str, Scale] = {
    "paper": Scale("paper", _PAPER, "paper", {}, augment=True, sample=False, seed=None),
    "quick": Scale(
        "quick", _QUICK, "paper", {**_QUICK_RECIPE, "gated_warmup": "off"}, False, True, 1
    ),
}
"""``--scale`` choices; ``paper`` is the default."""


def _v1(depth: int, paper: float | None = None, note: str = "", **kw: Any) -> Run:
    name = f"resnet{depth}v1"
    return Run(name, f"ResNet-{depth}", name, {}, "cifar10", paper, note, **kw)


def _plain(depth: int, **kw: Any) -> Run:
    return Run(f"plain{depth}v1", f"plain-{depth}", f"plain{depth}v1", **kw)


_TABLE6 = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97}  # and ResNet-110's best of 5
_BEST_OF_5 = "best of 5 (mean 6.61 ± 0.16)"
_FIG6 = ("resnet20v1", "resnet32v1", "resnet44v1", "resnet56v1", "resnet110v1")

DEGRADATION = Experiment(
    "degradation",
    "Plain against residual networks on CIFAR-10",
    f"{V1}, Fig. 6 (left: plain networks, middle: ResNets)",
    runs=(
        *map(_plain, _TABLE6),
        _plain(110, quick=False, paper_note="above 60 % (not drawn in Fig. 6)"),
        *(_v1(d, e, twin=f"plain{d}v1") for d, e in _TABLE6.items()),
        _v1(110, 6.43, _BEST_OF_5, twin="plain110v1", quick=False),
    ),
    panels=(
        Panel("plain networks", tuple(name.replace("resnet", "plain") for name in _FIG6)),
        Panel("ResNets", _FIG6),
    ),
    notes=(
        "The plain networks are the ResNets without their shortcuts (same convolutions, BN and "
        "ReLU); the v1 paper reports their curves (Fig. 6), not their errors.",
    ),
    check="degradation",
)

DEPTH = Experiment(
    "depth",
    "ResNet-20 to ResNet-1202 (v1) on CIFAR-10",
    f"{V1}, Table 6 and Fig. 6 (middle, right)",
    runs=(
        *(_v1(d, e) for d, e in _TABLE6.items()),
        _v1(110, 6.43, _BEST_OF_5),
        _v1(1202, 7.93, quick=False),
    ),
    panels=(
        Panel("ResNets", _FIG6),
        Panel("ResNet-110 and ResNet-1202", ("resnet110v1", "resnet1202v1")),
    ),
)


_R110 = "resnet110v1"
_TABLE1 = (  # run, network, model, paper error, paper note, options
    ("original", "original (identity)", _R110, 6.61, "", {}),
    ("plain", "constant scaling: shortcut 0, F 1 (plain net)", "plain110v1", None, FAIL, {}),
    ("scaling-0.5", "constant scaling: shortcut 0.5, F 0.5", _R110, 12.35, "", {"shortcut": "scaling", "shortcut_scale": 0.5}),
    ("exclusive-gating-bg0", "exclusive gating, b_g = 0", _R110, None, "fail (> 20 %) for every b_g from 0 to -5", {"shortcut": "exclusive_gating", "gate_bias": 0.0}),
    ("exclusive-gating-bg-6", "exclusive gating, b_g = -6", _R110, 8.70, "", {"shortcut": "exclusive_gating", "gate_bias": -6.0}),
    ("exclusive-gating-bg-7", "exclusive gating, b_g = -7", _R110, 9.81, "", {"shortcut": "exclusive_gating", "gate_bias": -7.0}),
    ("shortcut-gating-bg0", "shortcut-only gating, b_g = 0", _R110, 12.86, "", {"shortcut": "shortcut_gating", "gate_bias": 0.0}),
    ("shortcut-gating-bg-6", "shortcut-only gating, b_g = -6", _R110, 6.91, "", {"shortcut": "shortcut_gating", "gate_bias": -6.0}),
    ("conv-shortcut", "1×1 conv shortcut", _R110, 12.22, "", {"shortcut": "conv"}),
    ("dropout-shortcut", "dropout shortcut (0.5)", _R110, None, FAIL, {"shortcut": "dropout", "shortcut_dropout": 0.5}),
)  # fmt: skip
_F_SCALED = "shortcut='scaling' scales F by 1 - λ whenever it scales the shortcut by λ"

SHORTCUTS = Experiment(
    "shortcuts",
    "Shortcut kinds on ResNet-110 (v1 units) on CIFAR-10",
    f"{V2}, Table 1 and Fig. 3",
    runs=tuple(
        Run(n, label, m, o, paper_error=e, paper_note=note) for n, label, m, e, note, o in _TABLE1
    ),
    panels=(
        Panel("constant scaling", ("original", "scaling-0.5", "plain")),
        Panel(
            "exclusive gating",
            ("original", "exclusive-gating-bg-6", "exclusive-gating-bg-7", "exclusive-gating-bg0"),
        ),
        Panel("shortcut-only gating", ("original", "shortcut-gating-bg-6", "shortcut-gating-bg0")),
        Panel("1×1 conv shortcut", ("original", "conv-shortcut")),
        Panel("dropout shortcut", ("original", "dropout-shortcut")),
    ),
    curves="loss",
    warmup="on",
    unexpressible=(Unexpressible("constant scaling: shortcut 0.5, F 1", None, FAIL, _F_SCALED),),
    notes=(
        "Every run is ResNet110V1 (original units, ReLU after the addition) with one shortcut "
        "option; 'constant scaling: shortcut 0, F 1' is the plain network plain110v1.",
        "The paper tried every exclusive-gating b_g from 0 to -10 and reports 0 to -5 together "
        "as failing; b_g = 0 stands for them here.",
    ),
)

# Only the placement changes within a depth: ResNet-110 keeps ResNet110V1's parameter-free
# shortcuts (the paper's baseline [1]); ResNet-164 is ResNet164V2's bottleneck network.
_TABLE2 = (  # placement, label, ResNet-110 error, ResNet-164 error
    ("original", "original", 6.61, 5.93),
    ("bn_after_add", "BN after addition", 8.17, 6.50),
    ("relu_before_add", "ReLU before addition", 7.84, 6.14),
    ("relu_preact", "ReLU-only pre-activation", 6.71, 5.91),
    ("full_preact", "full pre-activation", 6.37, 5.46),
)

PLACEMENTS = Experiment(
    "placements",
    "Activation placements on ResNet-110 and ResNet-164 on CIFAR-10",
    f"{V2}, Table 2 and Fig. 6",
    runs=tuple(
        Run(
            f"{d}-{p.replace('_', '-')}",
            f"ResNet-{d}, {label}",
            m,
            {"placement": p},
            "cifar10",
            e[k],
        )
        for k, (d, m) in enumerate(((110, "resnet110v1"), (164, "resnet164v2")))
        for p, label, *e in _TABLE2
    ),
    panels=(
        Panel("ResNet-110: BN after addition", ("110-original", "110-bn-after-add")),
        Panel("ResNet-164: full pre-activation", ("164-original", "164-full-preact")),
    ),
    curves="loss",
    warmup="on",
    notes=(
        "Only the placement of BN and ReLU changes within a depth: the ResNet-110 rows are "
        "ResNet110V1 (parameter-free shortcuts) with placement=..., the ResNet-164 rows "
        "ResNet164V2 (bottlenecks, 1×1 projections where the shape changes) with placement=....",
        "The figure shows the v2 paper's two panels (Fig. 6); the other placements are in the "
        "table.",
    ),
)

_TABLE3 = (  # depth, dataset, v1 error, v2 error, note on v2's number; one panel each
    (110, "cifar10", 6.61, 6.37, ""),
    (164, "cifar10", 5.93, 5.46, ""),
    (1001, "cifar10", 7.61, 4.92, "median of 5 (mean 4.89 ± 0.14)"),
    (164, "cifar100", 25.16, 24.33, ""),
    (1001, "cifar100", 27.82, 22.71, "median of 5 (mean 22.68 ± 0.22)"),
)
_SHOWN = {"cifar10": ("", "CIFAR-10"), "cifar100": ("-c100", "CIFAR-100")}  # run suffix, name


def _pair(depth: int, dataset: str, original: float, preact: float, note: str) -> tuple[Run, Run]:
    """The v1 and v2 rows of Table 3: ResNet-110 as the named networks, the deeper ones as the
    v2 bottleneck network with ``placement='original'`` for v1, so that only the units differ."""
    (suffix, shown), quick = _SHOWN[dataset], dataset == "cifar10" and depth < 1001
    name, label = f"{depth}-{{}}{suffix}", f"ResNet-{depth} {{}}" + (f", {shown}" if suffix else "")
    if depth == 110:
        model, options, units = "resnet110v1", {}, "v1"
    else:
        model, options, units = f"resnet{depth}v2", {"placement": "original"}, "v1 (original units)"
    v1 = Run(name.format("v1"), label.format(units), model, options, dataset, original, "", quick)
    v2 = Run(
        name.format("v2"), label.format("v2"), f"resnet{depth}v2", {}, dataset, preact, note, quick
    )
    return v1, v2


_ONE_LAYER_SKIP = "keras_preact's units have two or three convolutions, not one"

PREACT = Experiment(
    "preact",
    "Original (v1) against pre-activation (v2) units on CIFAR-10 and CIFAR-100",
    f"{V2}, Table 3, Fig. 1 and Fig. 6",
    runs=tuple(run for row in _TABLE3 for run in _pair(*row)),
    panels=tuple(
        Panel(f"ResNet-{d}, {name}", (f"{d}-v1{suffix}", f"{d}-v2{suffix}"))
        for d, dataset, *_ in _TABLE3
        for suffix, name in [_SHOWN[dataset]]
    ),
    curves="loss",
    warmup="on",
    unexpressible=(
        Unexpressible("ResNet-110 (1-layer skip) v1", 9.90, "", _ONE_LAYER_SKIP),
        Unexpressible("ResNet-110 (1-layer skip) v2", 8.91, "", _ONE_LAYER_SKIP),
    ),
    notes=(
        "ResNet-110: the named ResNet110V1 and ResNet110V2 (parameter-free shortcuts in v1, 1×1 "
        "projections where the shape changes in v2). ResNet-164 and ResNet-1001: ResNet164V2 and "
        "ResNet1001V2, with placement='original' for the v1 rows, so that only the units differ.",
    ),
)

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e for e in (DEGRADATION, DEPTH, SHORTCUTS, PLACEMENTS, PREACT)
}
"""Every experiment by name (``python -m training.reproduce NAME``)."""

TRAIN_IMAGES = {"cifar10": 50_000, "cifar100": 50_000, "cifar10-sample": 1_000}
"""Training images of each dataset, for the cost ``--list`` shows before any data is loaded."""
