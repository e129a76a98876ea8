"""The official CIFAR-10/100 archives (python pickle and binary formats), as .tar.gz files or extracted folders.

Nothing is extracted to disk and no pickle runs code: the unpickler only resolves the numpy globals the
official files use. Every file is validated (record sizes, shapes, keys, label ranges) whatever the checksum
setting; with checksums on (the default) the archive, or each extracted file, must have the official md5.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import pickle
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_preact.command_line import UserError
from training.data.cifar.arrays import CifarArrays, make_arrays

PIXELS = 32 * 32 * 3
OFFICIAL_COUNTS = (50_000, 10_000)
"""Train and test images in both official datasets."""
OPT_OUT = "if this is a deliberate partial or re-packed copy, turn checksum verification off (--no-verify-checksums)"


@dataclass(frozen=True)
class Layout:
    """One official distribution: the folder its archive extracts to and the files in it."""

    dataset: str
    fmt: str  # "python" or "binary"
    archive_md5: str
    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    file_md5: dict[str, str] = field(default_factory=dict)  # of each extracted file, if published

    @property
    def archive(self) -> str:
        return f"cifar-{self.dataset.removeprefix('cifar')}-{self.fmt}.tar.gz"

    @property
    def num_classes(self) -> int:
        return int(self.dataset.removeprefix("cifar"))


# The python files' md5s, as published by torchvision; none are published for the binary files.
_FILE_MD5 = dict(
    line.split()
    for line in """
data_batch_1 c99cafc152244af753f735de768cd75f
data_batch_2 d4bba439e000b95fd0a9bffe97cbabec
data_batch_3 54ebc095f3ab1f0389bbae665268c751
data_batch_4 634d18415352ddfa80567beed471001a
data_batch_5 482c414d41f54cd18b22e5b47cb7c3cb
test_batch 40351d587109b95175f43aff81a1287e
batches.meta 5ff9c542aee3614f3951f8cda6e48888
train 16019d7e3df5f24257cddd939b257f8d
test f0ef6b0ae62326f3e7ffdfab6717acfc
meta 7973b15100ade9c7d40fb424638fde48""".strip().splitlines()
)
_SPLIT_FILES = {
    "cifar10": ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]),
    "cifar100": (["train"], ["test"]),
}


def _layout(dataset: str, fmt: str, archive_md5: str, folder: str, meta: str) -> Layout:
    """The binary files are the python ones' names with ``.bin``."""
    ext = ".bin" if fmt == "binary" else ""
    train, test = (tuple(n + ext for n in names) for names in _SPLIT_FILES[dataset])
    md5 = {n: _FILE_MD5[n] for n in (*train, *test, meta) if n in _FILE_MD5}
    return Layout(dataset, fmt, archive_md5, folder, train, test, meta, md5)


# dataset, format, archive md5, the folder it extracts to, the file of label names.
LAYOUTS: tuple[Layout, ...] = tuple(
    _layout(*line.split())
    for line in """
cifar10 python c58f30108f718f92721af3b95e74349a cifar-10-batches-py batches.meta
cifar10 binary c32a1d4ab5d03f1284b67883e8d87530 cifar-10-batches-bin batches.meta.txt
cifar100 python eb9058c3a382ffc7106e4002c42a8d85 cifar-100-python meta
cifar100 binary 03b5dce01913d631647c71ecec9e9cb8 cifar-100-binary fine_label_names.txt""".strip().splitlines()
)
"""The four official distributions, the python one of each dataset first (the preferred one)."""

# The only callables the official pickles (and numpy re-pickles of them) name. They are taken from what numpy
# itself pickles arrays with, so neither the private numpy._core nor the deprecated numpy.core is imported.
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Python 3 re-pickles: protocol 5 arrays, and bytes at protocol 2.
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("_codecs", "encode"): codecs.encode,
}


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles the official CIFAR batches (Python 2 pickles) and refuses every other global."""

    def __init__(self, blob: bytes, where: str):
        # latin1 is how numpy asks for Python 2 pickles holding arrays to be read.
        super().__init__(io.BytesIO(blob), encoding="latin1")
        self.where = where

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UserError(
                f"{self.where}: refusing to unpickle {module}.{name}: an official CIFAR pickle only holds "
                "numpy arrays, lists and strings"
            ) from None


def _unpickle(blob: bytes, where: str) -> dict[str, object]:
    """A pickled dict with str keys (the files have Python 2 byte-string keys)."""
    try:
        obj = _CifarUnpickler(blob, where).load()
    except UserError:
        raise
    except Exception as e:  # any parse failure of an untrusted file is the file's fault
        raise UserError(f"{where}: not a readable CIFAR pickle ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected a pickled dict, found {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _to_nhwc(rows: np.ndarray) -> np.ndarray:
    """(N, 3072) rows of 1024 red, 1024 green, 1024 blue row-major values -> (N, 32, 32, 3)."""
    return np.ascontiguousarray(rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def _check_labels(labels: np.ndarray, num_classes: int, where: str, what: str = "labels") -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise UserError(
            f"{where}: {what} span {labels.min()}..{labels.max()}, expected 0..{num_classes - 1}"
        )


def _python_batch(blob: bytes, where: str, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(blob, where)
    label_key = "labels" if layout.dataset == "cifar10" else "fine_labels"
    missing = {"data", label_key} - batch.keys()
    if missing:
        raise UserError(
            f"{where}: keys {sorted(batch)} lack {sorted(missing)}; expected data and {label_key}"
        )
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise UserError(f"{where}: data is {got}, expected uint8 (N, {PIXELS})")
    if data.shape[1] != PIXELS or data.shape[0] == 0:
        raise UserError(f"{where}: data has shape {data.shape}, expected (N > 0, {PIXELS})")
    try:
        labels = np.asarray(batch[label_key])
    except Exception as e:
        raise UserError(f"{where}: {label_key} is not a list of integers ({e})") from None
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise UserError(
            f"{where}: {label_key} is {labels.dtype} {labels.shape}, expected {len(data)} integers "
            "(one per image)"
        )
    _check_labels(labels, layout.num_classes, where, label_key)
    return _to_nhwc(data), labels


def _binary_batch(blob: bytes, where: str, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    # CIFAR-10: <label><3072 pixels>; CIFAR-100: <coarse label><fine label><3072 pixels>.
    label_bytes = 1 if layout.dataset == "cifar10" else 2
    record = label_bytes + PIXELS
    if not blob or len(blob) % record:
        raise UserError(
            f"{where}: {len(blob)} bytes is not a whole, non-zero number of {record}-byte records "
            f"({label_bytes} label byte(s) + {PIXELS} pixel bytes each)"
        )
    rows = np.frombuffer(blob, np.uint8).reshape(-1, record)
    if label_bytes == 2:
        _check_labels(rows[:, 0], 20, where, "coarse labels")
    labels = rows[:, label_bytes - 1]
    _check_labels(labels, layout.num_classes, where)
    return _to_nhwc(rows[:, label_bytes:]), labels.astype(np.int64)


def _label_names(blob: bytes, where: str, layout: Layout) -> tuple[str, ...]:
    if layout.fmt == "python":
        key = "label_names" if layout.dataset == "cifar10" else "fine_label_names"
        names = _unpickle(blob, where).get(key)
        if not isinstance(names, list) or not all(isinstance(n, (str, bytes)) for n in names):
            raise UserError(f"{where}: expected a list of strings under {key!r}")
        names = [n.decode("latin1") if isinstance(n, bytes) else n for n in names]
    else:
        try:
            text = blob.decode("ascii")
        except UnicodeDecodeError:
            raise UserError(f"{where}: not a text file of label names") from None
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != layout.num_classes:
        raise UserError(f"{where}: {len(names)} label names, expected {layout.num_classes}")
    return tuple(names)


def _check_md5(where: str, data: bytes | Path, official: str) -> None:
    if isinstance(data, Path):
        with data.open("rb") as f:
            actual = hashlib.file_digest(f, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()
    else:
        actual = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if actual != official:
        raise UserError(f"{where}: md5 {actual} is not the official {official}; {OPT_OUT}")


def _needed(layout: Layout) -> tuple[str, ...]:
    return (*layout.train, *layout.test, layout.meta)


def _describe(dataset: str) -> str:
    return ", ".join(f"{lay.archive}, {lay.folder}/" for lay in LAYOUTS if lay.dataset == dataset)


def _find(path: Path, dataset: str) -> tuple[Layout | None, Path]:
    """The archive or extracted folder that ``path`` is or holds, preferring ``dataset``'s, and its
    layout (None for an archive: known once it is read)."""
    if not path.exists():
        raise UserError(f"data folder {path} does not exist")
    if path.is_file():
        return None, path
    for layout in sorted(LAYOUTS, key=lambda lay: lay.dataset != dataset):
        if all((path / name).is_file() for name in (layout.train[0], layout.test[0])):
            return layout, path
        if (path / layout.folder).is_dir():
            return layout, path / layout.folder
        if (path / layout.archive).is_file():
            return None, path / layout.archive
    raise UserError(
        f"{path} holds no CIFAR data: expected, in it or as it, one of {_describe(dataset)}"
    )


def _read_archive(path: Path) -> tuple[Layout, dict[str, bytes]]:
    """Identify an official archive by its top folder and read the files it needs, in one pass (a
    .tar.gz cannot seek: reading members by name would decompress it again for each)."""
    layout, blobs = None, {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                top, _, name = member.name.removeprefix("./").partition("/")
                if layout is None:
                    layout = next((lay for lay in LAYOUTS if lay.folder == top), None)
                wanted = layout is not None and top == layout.folder and name in _needed(layout)
                if wanted and member.isfile():
                    blobs[name] = tar.extractfile(member).read()
    except (OSError, EOFError, tarfile.TarError) as e:
        raise UserError(
            f"{path}: not a readable .tar.gz archive ({type(e).__name__}: {e})"
        ) from None
    if layout is None:
        raise UserError(
            f"{path}: not an official CIFAR archive (expected its files under one of "
            f"{', '.join(lay.folder + '/' for lay in LAYOUTS)})"
        )
    return layout, blobs


def _read_folder(layout: Layout, folder: Path) -> dict[str, bytes]:
    blobs = {}
    for name in _needed(layout):
        try:
            blobs[name] = (folder / name).read_bytes()
        except FileNotFoundError:
            pass  # reported with the full list of what is needed
        except OSError as e:
            raise UserError(f"{folder / name}: cannot read it ({e.strerror or e})") from None
    return blobs


def load_folder(dataset: str, path: Path, *, verify_checksums: bool = True) -> CifarArrays:
    """Load ``dataset`` ("cifar10" or "cifar100") from ``path``: one of the four official .tar.gz
    archives (``LAYOUTS``), its extracted folder, or a folder holding either. With ``verify_checksums``
    the archive (or each extracted python file) must have the official md5, and the splits the official
    50,000/10,000 images in equal-sized classes (the only check of extracted binary files, whose md5s are
    not published). The structure is validated either way."""
    layout, location = _find(path, dataset)
    if layout is None:
        layout, blobs = _read_archive(location)
    else:
        blobs = _read_folder(layout, location)

    def where(name: str) -> str:  # its path, or archive:member
        return f"{location}:{layout.folder}/{name}" if location.is_file() else str(location / name)

    if layout.dataset != dataset:
        raise UserError(
            f"{location} holds {layout.dataset} ({layout.folder}), not {dataset}: "
            f"for {dataset} give one of {_describe(dataset)}"
        )
    missing = [name for name in _needed(layout) if name not in blobs]
    if missing:
        raise UserError(
            f"{where(missing[0])} is missing ({layout.folder} needs {', '.join(_needed(layout))})"
        )
    if verify_checksums:
        if location.is_file():
            _check_md5(str(location), location, layout.archive_md5)
        else:
            for name, md5 in layout.file_md5.items():
                _check_md5(where(name), blobs[name], md5)
    read = _python_batch if layout.fmt == "python" else _binary_batch
    splits = {}
    for split, names in (("train", layout.train), ("test", layout.test)):
        parts = [read(blobs.pop(name), where(name), layout) for name in names]
        splits[split] = tuple(np.concatenate(column) for column in zip(*parts, strict=True))
    label_names = _label_names(blobs[layout.meta], where(layout.meta), layout)
    # The official splits have exactly 50,000 and 10,000 images in equal-sized classes.
    for (split, (_, labels)), total in zip(splits.items(), OFFICIAL_COUNTS, strict=True):
        per_class = np.bincount(labels, minlength=layout.num_classes)
        if verify_checksums and (
            len(labels) != total or (per_class != total // layout.num_classes).any()
        ):
            raise UserError(
                f"{location}: the {split} split has {len(labels)} images in classes of "
                f"{per_class.min()}..{per_class.max()}, the official {layout.dataset} has {total} in "
                f"classes of {total // layout.num_classes}; {OPT_OUT}"
            )
    return make_arrays(
        dataset, *splits["train"], *splits["test"], label_names, origin=str(location)
    )
