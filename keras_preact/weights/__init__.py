"""Trained weights by name: ``keras_preact.ResNet50V1(weights="imagenet")``.

``weights=`` takes a dataset name (``"imagenet"``, ``"cifar10"``, ``"cifar100"``), which picks the
published weights whose layout the model's own arguments describe, or a qualified name that picks
one file exactly (``"torchvision:IMAGENET1K_V1"``, ``"keras.applications:imagenet"``,
``"timm:a1h_in1k"``, ``"akamaster:cifar10"``, ``"chenyaofo:cifar100"``). The table of what exists
is ``keras_preact.list_weights()`` (``python -m keras_preact.weights``).

The first use fetches the source's file (``weights.fetch``: verified, into the cache), converts it
with ``keras_preact.convert`` and caches the converted weights (``weights.cache``); later uses read
the cache only: no network, no conversion. The model's ``classes`` (when not given) and its
``preprocessing`` (when left at ``"auto"``) follow the weights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import keras_preact.convert.plan as planning
from keras_preact import __version__
from keras_preact.catalogue import FACTORY_NAMES
from keras_preact.weights import cache, fetch
from keras_preact.weights.fetch import (
    CACHE_VARIABLE,
    MIRROR_VARIABLE,
    WeightsUnavailable,
    cache_root,
)
from keras_preact.weights.table import DATASETS, ENTRIES, WeightsEntry

TITLES: dict[str, str] = {name.lower(): name for name in FACTORY_NAMES}
"""The named models, by the lower-case name the table uses: ``"resnet50v1" -> "ResNet50V1"``."""

SOURCES: tuple[str, ...] = tuple(dict.fromkeys(e.source for e in ENTRIES))
"""The sources of the named weights, as their qualified names start."""

OPTION_A = "split"
"""How the akamaster checkpoints place option A's zero channels (``keras_preact.convert.cifar``)."""


def list_weights(model: str | None = None) -> tuple[WeightsEntry, ...]:
    """Every named weights file (or those of ``model``, e.g. ``"resnet50v1"``): its source,
    qualified name, URL, the options it needs, the preprocessing it was trained with, the accuracy
    as the source publishes it (not re-measured by keras-preact) and its licence note.

    Examples:
        >>> [e.qualified for e in list_weights("resnet18v1")]
        ['torchvision:IMAGENET1K_V1']
    """
    if model is None:
        return ENTRIES
    key = model.lower() if isinstance(model, str) else None
    if key not in TITLES:
        raise ValueError(f"unknown model {model!r}; expected one of {', '.join(TITLES.values())}")
    return tuple(e for e in ENTRIES if e.model == key)


def is_named(weights: Any) -> bool:
    """Whether ``weights=`` names published weights rather than a file."""
    if not isinstance(weights, str):
        return False
    if weights in DATASETS:
        return True
    source, sep, _ = weights.partition(":")
    return bool(sep) and source in SOURCES


def _holds(entry: WeightsEntry, arch) -> bool:
    return (entry.family, entry.version, entry.depth, entry.unit) == (
        arch.family,
        arch.version,
        arch.depth,
        arch.spec.unit,
    )


def needs(entry: WeightsEntry, arch) -> dict[str, tuple[Any, Any]]:
    """The arguments whose value ``entry`` needs and ``arch`` does not have: name -> (needed, has)."""
    spec = arch.spec
    want = {
        "placement": "original" if arch.version == "v1" else "full_preact",
        "shortcut": "identity",
        "projection": entry.options.get("projection", "B"),
        "width_multiplier": 1,
    }
    have = {
        "placement": spec.placement,
        "shortcut": spec.shortcut,
        "projection": spec.projection,
        "width_multiplier": arch.width_multiplier,
    }
    if spec.unit == "bottleneck":
        want["bottleneck_stride"] = entry.options.get("bottleneck_stride", "3x3")
        have["bottleneck_stride"] = spec.bottleneck_stride
    return {k: (want[k], have[k]) for k in want if want[k] != have[k]}


def _available() -> str:
    by_model: dict[str, list[str]] = {}
    for e in ENTRIES:
        names = by_model.setdefault(e.model, [])
        if e.dataset not in names:
            names.append(e.dataset)
    return "; ".join(f"{m} ({', '.join(d)})" for m, d in by_model.items())


def choose(weights: str, arch, *, model_name: str) -> WeightsEntry:
    """The entry ``weights`` names for a model of architecture ``arch`` (see the module
    docstring), or a ValueError in one line: what it needs, or what exists."""
    held = [e for e in ENTRIES if _holds(e, arch)]
    if weights in DATASETS:
        candidates = [e for e in held if e.dataset == weights]
    else:
        candidates = [e for e in held if e.qualified == weights]
        if not candidates:
            same = [e for e in ENTRIES if e.qualified == weights]
            if same:
                raise ValueError(
                    f"weights={weights!r} exist for {', '.join(e.model for e in same)}, not for "
                    f"{model_name}"
                    + (f"; {model_name} has {', '.join(e.qualified for e in held)}" if held else "")
                )
            known = ", ".join(e.qualified for e in held) or "none"
            raise ValueError(
                f"unknown weights {weights!r} for {model_name}; its named weights: {known} "
                f"(or {', '.join(map(repr, DATASETS))} to choose by dataset)"
            )
    if not candidates:
        raise ValueError(
            f"no published {weights} weights hold {model_name}; named weights exist for: "
            f"{_available()} (or pass weights=PATH to convert a file)"
        )
    for entry in candidates:
        if not needs(entry, arch):
            return entry
    title = TITLES[candidates[0].model]
    ways = []
    for entry in candidates:
        need = needs(entry, arch)
        listed = ", ".join(f"{k}={v!r} (the model has {h!r})" for k, (v, h) in need.items())
        args = ", ".join(f"{k}={v!r}" for k, (v, _) in need.items())
        ways.append(
            f"{entry.qualified} needs {listed}: build keras_preact.{title}("
            f"weights={weights!r}, {args})"
        )
    raise ValueError(f"weights={weights!r} for {model_name}: " + "; ".join(ways))


def _cache_options(arch) -> dict[str, Any]:
    """The architecture options that decide the converted values (the cache key)."""
    spec = arch.spec
    return {
        "family": arch.family,
        "version": arch.version,
        "depth": arch.depth,
        "unit": spec.unit,
        "placement": spec.placement,
        "projection": spec.projection,
        "bottleneck_stride": spec.bottleneck_stride,
        "width_multiplier": arch.width_multiplier,
        "bn_epsilon": arch.layers.bn_epsilon,
        "option_a": OPTION_A,
    }


@dataclasses.dataclass
class NamedWeights:
    """Named weights resolved for a model about to be built: the entry, and either the cached
    converted weights or the fetched checkpoint planned against the architecture.

    ``classifier``: ``"load"``, ``"new"`` (another ``classes``) or ``"drop"``
    (``include_top=False``), as for checkpoint files.
    """

    entry: WeightsEntry
    arch: Any
    classifier: str
    key: str
    cached: Any = None
    plan: Any = None
    source_sha256: str | None = None
    log: Callable[[str], None] = print

    def load_into(self, model) -> None:
        """Set the model's weights from the cache, or convert the checkpoint and cache it."""
        keep = self.classifier == "load"
        if self.cached is not None:
            try:
                cache.load(self.cached, model, classifier=keep)
                return
            except (OSError, ValueError):  # damaged after the lookup: convert again
                self.cached = None
                self._prepare_conversion(model.name)
        self.plan.load_into(model)
        metadata = {
            "entry": self.entry.qualified,
            "url": self.entry.url,
            "source_sha256": self.source_sha256,
            "options": _cache_options(self.arch),
            "keras_preact": __version__,
        }
        try:
            cache.write(cache_root(), self.key, model, classifier=keep, metadata=metadata)
        except OSError as e:
            self.log(
                f"weights: {self.entry.qualified} converted, but not cached in "
                f"{cache_root() / 'converted'} ({fetch._reason(e)}): the next use converts again"
            )

    def _prepare_conversion(self, model_name: str) -> None:
        path, self.source_sha256 = fetch.fetch(self.entry, log=self.log)
        include_top = self.classifier != "drop"
        try:
            self.plan = planning.plan_checkpoint(
                path,
                self.arch,
                include_top=include_top,
                classes=self.entry.classes if self.classifier == "load" else -1,
                classes_given=True,
                option_a=OPTION_A,
                model_name=model_name,
            )
        except ValueError as e:
            raise WeightsUnavailable(
                f"{self.entry.qualified} weights fetched from {self.entry.url} into {path} cannot "
                f"be converted: {e}"
            ) from None


def prepare(
    weights: str,
    arch,
    *,
    include_top: bool,
    classes: int,
    model_name: str,
    log: Callable[[str], None] = print,
) -> NamedWeights:
    """Resolve ``weights`` for ``arch`` and make the weights ready before the model is built:
    read from the cache, or fetched, verified and checked against the architecture.
    ``classes`` is the model's (the entry's when the user gave none)."""
    entry = choose(weights, arch, model_name=model_name)
    classifier = "drop" if not include_top else "load" if classes == entry.classes else "new"
    key = cache.key_of(entry, _cache_options(arch))
    named = NamedWeights(entry, arch, classifier, key, log=log)
    hit = cache.lookup(cache_root(), key, classifier=classifier == "load", log=log)
    if hit is not None:
        named.cached, meta = hit
        named.source_sha256 = meta.get("source_sha256")
    else:
        named._prepare_conversion(model_name)
    return named


__all__ = [
    "CACHE_VARIABLE",
    "DATASETS",
    "ENTRIES",
    "MIRROR_VARIABLE",
    "WeightsEntry",
    "WeightsUnavailable",
    "cache_root",
    "choose",
    "is_named",
    "list_weights",
    "prepare",
]
