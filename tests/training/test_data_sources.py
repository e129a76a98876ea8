"""training.data.cifar.sources.load_arrays: the embedded sample, the official CIFAR archives (folder:PATH), bad input.

The archives are written here, in the official formats, from the embedded sample's real images: python
batches pickled the way Python 2's cPickle wrote the originals (byte strings, numpy.core globals) and binary
batches of fixed-size records, as extracted folders and as .tar.gz files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from keras_preact.command_line import UserError
from keras_preact.datasets import CIFAR100_LABELS, load_sample
from training.data.cifar import archives as cifar_archives
from training.data.cifar.arrays import CifarArrays
from training.data.cifar.sources import load_arrays

SAMPLE = load_sample()
LAYOUT = {(lay.dataset, lay.fmt): lay for lay in cifar_archives.LAYOUTS}


class _Py2Pickler(pickle._Pickler):
    """Pickles like Python 2's cPickle did for the official files: str as STRING, numpy.core globals."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_string(self, obj: str | bytes) -> None:
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = save_py2_string
    dispatch[bytes] = save_py2_string

    def save_global(self, obj, name=None) -> None:
        if getattr(obj, "__name__", None) == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def py2_pickle(obj) -> bytes:
    """``obj`` pickled at protocol 2 the way the official CIFAR python files are."""
    import io

    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def _rows(x: np.ndarray) -> np.ndarray:
    """NHWC images -> the official (N, 3072) rows: red plane, green plane, blue plane."""
    return x.transpose(0, 3, 1, 2).reshape(len(x), -1)


def cifar100_labels(y10: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fine labels spanning 0..99 and their coarse labels, derived from CIFAR-10 labels."""
    fine = (y10.astype(np.int64) * 10 + np.arange(len(y10)) % 10).astype(np.int64)
    return fine, fine // 5


def expected(dataset: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What loading the written archive must give back."""
    if dataset == "cifar10":
        return SAMPLE.x_train, SAMPLE.y_train, SAMPLE.x_test, SAMPLE.y_test
    return (
        SAMPLE.x_train,
        cifar100_labels(SAMPLE.y_train)[0],
        SAMPLE.x_test,
        cifar100_labels(SAMPLE.y_test)[0],
    )


def official_files(dataset: str, fmt: str) -> dict[str, bytes]:
    """The files of an official distribution, holding the sample's images."""
    names10 = list(SAMPLE.label_names)
    names100 = list(CIFAR100_LABELS)
    coarse_names = [f"superclass_{i}" for i in range(20)]
    files = {}
    if dataset == "cifar10":
        train_parts = np.array_split(np.arange(len(SAMPLE.x_train)), 5)
        for i, part in enumerate(train_parts, 1):
            x, y = SAMPLE.x_train[part], SAMPLE.y_train[part]
            if fmt == "python":
                files[f"data_batch_{i}"] = py2_pickle(
                    {
                        "batch_label": f"training batch {i} of 5",
                        "labels": [int(v) for v in y],
                        "data": _rows(x),
                        "filenames": [f"img_{i}_{j}.png" for j in range(len(x))],
                    }
                )
            else:
                files[f"data_batch_{i}.bin"] = np.concatenate([y[:, None], _rows(x)], 1).tobytes()
        x, y = SAMPLE.x_test, SAMPLE.y_test
        if fmt == "python":
            files["test_batch"] = py2_pickle(
                {
                    "batch_label": "testing batch 1 of 1",
                    "labels": [int(v) for v in y],
                    "data": _rows(x),
                    "filenames": [f"test_{j}.png" for j in range(len(x))],
                }
            )
            files["batches.meta"] = py2_pickle(
                {"num_cases_per_batch": 200, "label_names": names10, "num_vis": 3072}
            )
        else:
            files["test_batch.bin"] = np.concatenate([y[:, None], _rows(x)], 1).tobytes()
            files["batches.meta.txt"] = ("\n".join(names10) + "\n\n").encode()
        return files
    for split, x, y in (
        ("train", SAMPLE.x_train, SAMPLE.y_train),
        ("test", SAMPLE.x_test, SAMPLE.y_test),
    ):
        fine, coarse = cifar100_labels(y)
        if fmt == "python":
            files[split] = py2_pickle(
                {
                    "filenames": [f"{split}_{j}.png" for j in range(len(x))],
                    "batch_label": f"{split}ing batch 1 of 1",
                    "fine_labels": [int(v) for v in fine],
                    "coarse_labels": [int(v) for v in coarse],
                    "data": _rows(x),
                }
            )
        else:
            labels = np.stack([coarse, fine], 1).astype(np.uint8)
            files[f"{split}.bin"] = np.concatenate([labels, _rows(x)], 1).tobytes()
    if fmt == "python":
        files["meta"] = py2_pickle(
            {"fine_label_names": names100, "coarse_label_names": coarse_names}
        )
    else:
        files["fine_label_names.txt"] = ("\n".join(names100) + "\n").encode()
        files["coarse_label_names.txt"] = ("\n".join(coarse_names) + "\n").encode()
    return files


def write_folder(root: Path, layout: cifar_archives.Layout, files: dict[str, bytes]) -> Path:
    """Write ``files`` as the extracted folder of ``layout`` under ``root``."""
    folder = root / layout.folder
    folder.mkdir(parents=True)
    for name, blob in files.items():
        (folder / name).write_bytes(blob)
    return folder


def write_archive(root: Path, layout: cifar_archives.Layout, files: dict[str, bytes]) -> Path:
    """Write ``files`` as the official .tar.gz of ``layout`` under ``root``."""
    staging = write_folder(root / "staging", layout, files)
    root.mkdir(parents=True, exist_ok=True)
    archive = root / layout.archive
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging, arcname=layout.folder)
    return archive


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[tuple[str, str], tuple[Path, Path]]:
    """For each official layout: (extracted folder, .tar.gz) holding the sample's images."""
    out = {}
    for (dataset, fmt), layout in LAYOUT.items():
        files = official_files(dataset, fmt)
        root = tmp_path_factory.mktemp(f"{dataset}-{fmt}")
        out[dataset, fmt] = (
            write_folder(root / "x", layout, files),
            write_archive(root / "a", layout, files),
        )
    return out


def assert_loaded(arrays: CifarArrays, dataset: str) -> None:
    x_train, y_train, x_test, y_test = expected(dataset)
    assert arrays.name == dataset
    assert arrays.x_train.dtype == np.uint8 and arrays.x_train.shape == (1000, 32, 32, 3)
    assert arrays.y_train.dtype == np.int64 and arrays.y_test.dtype == np.int64
    np.testing.assert_array_equal(arrays.x_train, x_train)
    np.testing.assert_array_equal(arrays.y_train, y_train)
    np.testing.assert_array_equal(arrays.x_test, x_test)
    np.testing.assert_array_equal(arrays.y_test, y_test)
    names = SAMPLE.label_names if dataset == "cifar10" else CIFAR100_LABELS
    assert arrays.label_names == names and arrays.num_classes == len(names)


@pytest.mark.parametrize("key", list(LAYOUT), ids=lambda k: "-".join(k))
@pytest.mark.parametrize("form", ["extracted", "tar.gz", "parent-of-extracted", "parent-of-tar.gz"])
def test_official_formats_load_back_identical(archives, key, form):
    folder, archive = archives[key]
    path = {
        "extracted": folder,
        "tar.gz": archive,
        "parent-of-extracted": folder.parent,
        "parent-of-tar.gz": archive.parent,
    }[form]
    arrays = load_arrays(key[0], f"folder:{path}", verify_checksums=False)
    assert_loaded(arrays, key[0])


def test_python3_repickled_batches_load(tmp_path):
    """A copy re-pickled by Python 3 (protocol 5, numpy 2 globals, bytes keys) is accepted too."""
    layout = LAYOUT["cifar10", "python"]
    files = official_files("cifar10", "python")
    for name, blob in files.items():
        obj = cifar_archives._unpickle(blob, name)
        files[name] = pickle.dumps({k.encode(): v for k, v in obj.items()}, protocol=5)
    folder = write_folder(tmp_path, layout, files)
    assert_loaded(load_arrays("cifar10", f"folder:{folder}", verify_checksums=False), "cifar10")


def test_sample_source():
    arrays = load_arrays("cifar10-sample")
    assert arrays.name == "cifar10-sample" and arrays.num_classes == 10
    assert arrays.label_names == SAMPLE.label_names
    assert arrays.x_train.shape == (1000, 32, 32, 3) and arrays.x_test.shape == (300, 32, 32, 3)
    assert arrays.y_train.dtype == np.int64
    assert arrays.origin == "embedded sample (keras_preact/datasets/cifar10_sample.npz)"
    np.testing.assert_array_equal(arrays.x_train, SAMPLE.x_train)
    np.testing.assert_array_equal(arrays.y_test, SAMPLE.y_test)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("key", list(LAYOUT), ids=lambda k: "-".join(k))
def test_checksum_mismatch_is_reported_for_archives(archives, key):
    _, archive = archives[key]
    with pytest.raises(UserError) as e:
        load_arrays(key[0], f"folder:{archive}")
    message = str(e.value)
    assert f"md5 {_md5(archive)} is not the official {LAYOUT[key].archive_md5}" in message
    assert "--no-verify-checksums" in message and str(archive) in message


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_checksum_mismatch_is_reported_for_extracted_python_files(archives, dataset):
    folder, _ = archives[dataset, "python"]
    with pytest.raises(UserError, match=r"is not the official .*--no-verify-checksums") as e:
        load_arrays(dataset, f"folder:{folder}")
    assert str(folder) in str(e.value)


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_extracted_binary_with_checksums_on_needs_the_official_counts(archives, dataset):
    """No md5s are published for the binary files: verification falls back to the official counts."""
    folder, _ = archives[dataset, "binary"]
    with pytest.raises(UserError, match=r"train split has 1000 images .* official .* has 50000"):
        load_arrays(dataset, f"folder:{folder}")


def test_verification_accepts_matching_checksums_and_counts(archives, monkeypatch):
    """With the sample's own md5s and counts declared official, verification passes end to end."""
    folder, archive = archives["cifar10", "python"]
    layout = LAYOUT["cifar10", "python"]
    md5s = {name: _md5(folder / name) for name in layout.file_md5}
    patched = dataclasses.replace(layout, archive_md5=_md5(archive), file_md5=md5s)
    others = tuple(lay for lay in cifar_archives.LAYOUTS if lay is not layout)
    monkeypatch.setattr(cifar_archives, "LAYOUTS", (patched, *others))
    monkeypatch.setattr(cifar_archives, "OFFICIAL_COUNTS", (1000, 300))
    for path in (folder, archive):
        assert_loaded(load_arrays("cifar10", f"folder:{path}"), "cifar10")


def _corrupt_copy(archives, tmp_path, key, name: str, blob: bytes) -> Path:
    folder, _ = archives[key]
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    files[name] = blob
    return write_folder(tmp_path, LAYOUT[key], files)


def test_pickle_with_a_forbidden_global_is_refused_without_running_it(archives, tmp_path):
    sentinel = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {sentinel}",))

    folder = _corrupt_copy(
        archives, tmp_path, ("cifar10", "python"), "data_batch_3", pickle.dumps(Exploit())
    )
    with pytest.raises(UserError, match=r"data_batch_3: refusing to unpickle (posix|os)\.system"):
        load_arrays("cifar10", f"folder:{folder}", verify_checksums=False)
    assert not sentinel.exists()


@pytest.mark.parametrize(
    ("key", "name", "mutate", "message"),
    [
        (
            ("cifar10", "python"),
            "data_batch_2",
            lambda b: b[: len(b) // 2],
            "not a readable CIFAR pickle",
        ),
        (
            ("cifar10", "python"),
            "test_batch",
            lambda b: py2_pickle([1, 2]),
            "expected a pickled dict",
        ),
        (
            ("cifar10", "python"),
            "data_batch_1",
            lambda b: py2_pickle({"data": np.zeros((4, 3000), np.uint8), "labels": [0] * 4}),
            r"data has shape \(4, 3000\), expected \(N > 0, 3072\)",
        ),
        (
            ("cifar10", "python"),
            "data_batch_1",
            lambda b: py2_pickle({"data": np.zeros((4, 3072), np.uint8), "labels": [0, 1, 2, 10]}),
            r"labels span 0..10, expected 0..9",
        ),
        (
            ("cifar10", "python"),
            "data_batch_1",
            lambda b: py2_pickle({"data": np.zeros((4, 3072), np.uint8), "labels": [0, 1]}),
            r"labels is int64 \(2,\), expected 4 integers",
        ),
        (
            ("cifar100", "python"),
            "train",
            lambda b: py2_pickle({"data": np.zeros((4, 3072), np.uint8), "labels": [0] * 4}),
            r"lack \['fine_labels'\]",
        ),
        (
            ("cifar10", "python"),
            "batches.meta",
            lambda b: py2_pickle({"label_names": ["a"]}),
            "1 label names, expected 10",
        ),
        (
            ("cifar10", "binary"),
            "data_batch_4.bin",
            lambda b: b + b"12345",
            "not a whole, non-zero number of 3073-byte records",
        ),
        (("cifar10", "binary"), "test_batch.bin", lambda b: b"", "not a whole, non-zero number"),
        (("cifar100", "binary"), "train.bin", lambda b: b[:-1], "3074-byte records"),
        (
            ("cifar100", "binary"),
            "test.bin",
            lambda b: b"\x00\x64" + b[2:],
            "labels span 0..100, expected 0..99",
        ),
        (
            ("cifar100", "binary"),
            "test.bin",
            lambda b: b"\x14" + b[1:],
            "coarse labels span 0..20, expected 0..19",
        ),
        (
            ("cifar10", "binary"),
            "batches.meta.txt",
            lambda b: b"\xff\xfe",
            "not a text file of label names",
        ),
    ],
)
def test_corrupt_files_are_rejected_naming_the_file(archives, tmp_path, key, name, mutate, message):
    folder, _ = archives[key]
    copy = _corrupt_copy(archives, tmp_path, key, name, mutate((folder / name).read_bytes()))
    with pytest.raises(UserError, match=message) as e:
        load_arrays(key[0], f"folder:{copy}", verify_checksums=False)
    assert str(copy / name) in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file_is_named(archives, tmp_path):
    folder = _corrupt_copy(archives, tmp_path, ("cifar10", "binary"), "x", b"")
    (folder / "data_batch_5.bin").unlink()
    with pytest.raises(
        UserError, match=r"data_batch_5.bin is missing \(cifar-10-batches-bin needs"
    ):
        load_arrays("cifar10", f"folder:{folder}", verify_checksums=False)


def test_truncated_archive_is_rejected(archives, tmp_path):
    _, archive = archives["cifar100", "python"]
    cut = tmp_path / archive.name
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(UserError, match=f"{cut}: not a readable .tar.gz archive"):
        load_arrays("cifar100", f"folder:{cut}", verify_checksums=False)


def test_archive_of_other_things_is_rejected(tmp_path):
    archive = tmp_path / "photos.tar.gz"
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.txt").write_text("hi")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "photos", arcname="photos")
    with pytest.raises(UserError, match="not an official CIFAR archive"):
        load_arrays("cifar10", f"folder:{archive}", verify_checksums=False)
    not_tar = tmp_path / "notes.txt"
    not_tar.write_text("not an archive")
    with pytest.raises(UserError, match=r"not a readable .tar.gz archive"):
        load_arrays("cifar10", f"folder:{not_tar}", verify_checksums=False)


def test_wrong_dataset_in_folder_is_named(archives):
    folder, archive = archives["cifar100", "binary"]
    for path in (folder, archive, folder.parent):
        with pytest.raises(
            UserError, match=r"holds cifar100 .*not cifar10: for cifar10 give one of"
        ):
            load_arrays("cifar10", f"folder:{path}", verify_checksums=False)


def test_missing_or_empty_folder_never_falls_back_to_the_sample(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_arrays("cifar10", f"folder:{tmp_path / 'nope'}")
    with pytest.raises(UserError, match=r"holds no CIFAR data: expected.*cifar-10-python.tar.gz"):
        load_arrays("cifar10", f"folder:{tmp_path}")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"dataset": "imagenet"},
            "unknown dataset 'imagenet': choose one of cifar10, cifar100, cifar10-sample",
        ),
        (
            {"dataset": "cifar10", "source": "gcs"},
            "unknown data source 'gcs': use tfds or folder:PATH",
        ),
        ({"dataset": "cifar10", "source": "folder:"}, "unknown data source 'folder:'"),
        (
            {"dataset": "cifar10-sample", "source": "folder:/x"},
            "embedded sample: it takes no data source",
        ),
        (
            {"dataset": "cifar10-sample", "data_dir": "/x"},
            "embedded sample: it takes no data source",
        ),
        (
            {"dataset": "cifar10-sample", "source": "tfds"},
            "embedded sample: it takes no data source",
        ),
        (
            {"dataset": "cifar10", "source": "folder:/x", "data_dir": "/y"},
            "applies to the tfds source only",
        ),
    ],
)
def test_bad_dataset_or_source(kwargs, message):
    with pytest.raises(UserError, match=message):
        load_arrays(**kwargs)


def test_cli_trains_from_a_folder_archive_once_checksums_are_turned_off(archives, tmp_path, capsys):
    """Through the CLI: a re-packed archive is refused with the way out named, then trains with it."""
    from training import cifar

    _, archive = archives["cifar10", "python"]
    out = tmp_path / "run"
    argv = [
        *("--data-source", f"folder:{archive}", "--model", "resnet8v1", "--recipe", "demo"),
        *("--epochs", "1", "--batch-size", "100", "--seed", "0", "--verbose", "quiet"),
        *("--output", str(out)),
    ]
    with pytest.raises(SystemExit) as e:
        cifar.main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert "is not the official" in err and "--no-verify-checksums" in err
    assert not out.exists()

    assert cifar.main([*argv, "--no-verify-checksums"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["data"] == {
        "source": str(archive),
        "classes": 10,
        "train_examples": 1000,
        "test_examples": 300,
    }
    assert metrics["config"]["data_source"] == f"folder:{archive}"
