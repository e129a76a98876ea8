"""CIFAR-10/100 into memory (``load_arrays``) from a source: ``tfds`` (``cifar.from_tfds``), ``folder:PATH``
(the official archives or their extracted folders, ``cifar.archives``) or the embedded ``cifar10-sample``.
Nothing falls back to the sample when real data is missing: that is an error."""

from __future__ import annotations

from pathlib import Path

from keras_preact.command_line import UserError
from keras_preact.datasets import load_sample
from training.choices import DATASETS
from training.data.cifar.archives import load_folder
from training.data.cifar.arrays import SAMPLE_ORIGIN, CifarArrays, make_arrays
from training.data.cifar.from_tfds import load_tfds

SOURCES_HELP = "tfds or folder:PATH"
"""What ``load_arrays(source=...)`` accepts, for messages and CLI help."""

DEFAULT_SOURCES: dict[str, str | None] = {
    "cifar10": "tfds",
    "cifar100": "tfds",
    "cifar10-sample": None,
}
"""The source ``load_arrays`` reads each dataset from when none is given."""


def load_arrays(
    dataset: str,
    source: str | None = None,
    data_dir: str | None = None,
    *,
    verify_checksums: bool = True,
) -> CifarArrays:
    """Load ``dataset`` (one of ``DATASETS``) from ``source``: ``None`` (``DEFAULT_SOURCES``),
    ``"tfds"`` (``cifar.from_tfds.load_tfds`` from ``data_dir``) or ``"folder:PATH"``
    (``cifar.archives.load_folder``, with ``verify_checksums``); ``cifar10-sample`` takes no source or
    data_dir. ``UserError`` with one line on any bad input."""
    name = dataset.strip().lower()
    if name not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    if name == "cifar10-sample":
        if source is not None or data_dir:
            raise UserError(
                "cifar10-sample is the embedded sample: it takes no data source or data dir"
            )
        s = load_sample()
        return make_arrays(
            name, s.x_train, s.y_train, s.x_test, s.y_test, s.label_names, origin=SAMPLE_ORIGIN
        )
    source = DEFAULT_SOURCES[name] if source is None else source
    kind, _, path = source.partition(":")
    if (kind, path) != ("tfds", "") and not (kind == "folder" and path):
        raise UserError(f"unknown data source {source!r}: use {SOURCES_HELP}")
    if kind == "folder":
        if data_dir:
            raise UserError(
                f"the data dir {data_dir!r} applies to the tfds source only, not {source!r}"
            )
        return load_folder(name, Path(path).expanduser(), verify_checksums=verify_checksums)
    return load_tfds(name, data_dir)
