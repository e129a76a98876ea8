"""The converted-weights cache: a checkpoint converted once, read by layer name ever after.

An entry is two files under ``<cache root>/converted/``: ``<key>.h5``, every converted layer's
weights as ``<layer name>/<index>`` arrays (HDF5, read with h5py), and ``<key>.json``, what it holds:
the source file's SHA-256, the architecture options, whether the classifier is there, the
keras-preact version and the SHA-256 of the ``.h5`` file. The key is the entry's qualified name, the
source file's SHA-256 and the options that change the converted values. Both files are written to
temporary names and renamed into place (the metadata last), so a reader sees a whole entry or
none; an entry whose ``.h5`` does not match the SHA-256 in its metadata is damaged, and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from keras_preact.weights.fetch import sha256_of
from keras_preact.weights.table import WeightsEntry

FORMAT = 1
CLASSIFIER = "logits"


def key_of(entry: WeightsEntry, options: dict[str, Any]) -> str:
    """The cache key of ``entry`` converted for a model with these architecture ``options``."""
    blob = json.dumps(
        {"entry": entry.qualified, "hash": entry.file_hash, "url": entry.url, **options},
        sort_keys=True,
        default=str,
    )
    name = entry.qualified.replace(":", "-").replace("/", "-")
    return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def paths(root: Path, key: str) -> tuple[Path, Path]:
    """The ``.h5`` and ``.json`` files of a cache entry."""
    folder = root / "converted"
    return folder / f"{key}.h5", folder / f"{key}.json"


def lookup(root: Path, key: str, *, classifier: bool, log=None) -> tuple[Path, dict] | None:
    """The entry's weights file and metadata when present, whole and (with ``classifier``)
    holding the classifier; None otherwise (also for a damaged entry, which is then rebuilt:
    ``log`` hears of it)."""
    weights, meta_path = paths(root, key)
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return None
    if classifier and not meta.get("classifier"):
        return None
    try:
        intact = sha256_of(weights) == meta.get("weights_sha256")
    except OSError:
        intact = False
    if not intact:
        if log is not None:
            log(f"weights: the cached conversion {weights} is damaged or missing: converting again")
        return None
    return weights, meta


def write(root: Path, key: str, model, *, classifier: bool, metadata: dict[str, Any]) -> None:
    """Store ``model``'s converted weights (without its classifier unless ``classifier``)."""
    import h5py  # only when weights are cached; weights imports without it (--help)

    weights, meta_path = paths(root, key)
    weights.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    tmp_weights = weights.with_name(f".{weights.name}.{token}")
    tmp_meta = meta_path.with_name(f".{meta_path.name}.{token}")
    try:
        with h5py.File(tmp_weights, "w") as f:
            for layer in model.layers:
                if not layer.weights or layer.name.endswith("_shortcut_pad"):
                    continue
                if layer.name == CLASSIFIER and not classifier:
                    continue
                group = f.create_group(layer.name)
                for i, value in enumerate(layer.get_weights()):
                    group.create_dataset(str(i), data=value)
        meta = {
            "format": FORMAT,
            **metadata,
            "classifier": classifier,
            "weights_sha256": sha256_of(tmp_weights),
        }
        tmp_meta.write_text(json.dumps(meta, indent=1, sort_keys=True))
        os.replace(tmp_weights, weights)
        os.replace(tmp_meta, meta_path)
    finally:
        for tmp in (tmp_weights, tmp_meta):
            with contextlib.suppress(OSError):
                tmp.unlink()


def load(path: Path, model, *, classifier: bool) -> int:
    """Set every weighted layer of ``model`` from a cache file, by layer name (the classifier
    only with ``classifier``); a ValueError, and nothing set, if any layer is missing or differs.
    Returns the number of layers set."""
    import h5py  # only when weights are cached; weights imports without it (--help)

    plan = []
    with h5py.File(path, "r") as f:
        for layer in model.layers:
            if not layer.weights or layer.name.endswith("_shortcut_pad"):
                continue
            if layer.name == CLASSIFIER and not classifier:
                continue
            group = f.get(layer.name)
            if group is None or len(group) != len(layer.weights):
                raise ValueError(f"cached weights {path} lack layer {layer.name!r}")
            values = [np.asarray(group[str(i)]) for i in range(len(layer.weights))]
            shapes = [tuple(w.shape) for w in layer.weights]
            if [v.shape for v in values] != shapes:
                raise ValueError(f"cached weights {path} do not fit layer {layer.name!r}")
            plan.append((layer, values))
    for layer, values in plan:
        layer.set_weights(values)
    return len(plan)
