"""training.data.cifar.sources.load_arrays with source="tfds": a prepared data dir, tfds' mock data, the offline fast-fail."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_preact.command_line import UserError
from keras_preact.datasets import CIFAR100_LABELS, load_sample
from training.data.cifar import from_tfds as tfds_source
from training.data.cifar.arrays import CifarArrays
from training.data.cifar.sources import load_arrays

SAMPLE = load_sample()


@pytest.fixture
def offline(monkeypatch):
    """Fail the test if anything probes the network or asks tfds to download."""

    def no_probe(*args, **kwargs):
        raise AssertionError("the download host was probed")

    def no_download(*args, **kwargs):
        raise AssertionError("tfds was asked to download")

    monkeypatch.setattr(tfds_source, "reachable", no_probe)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_download)


@pytest.fixture(scope="module")
def prepared_dir(tmp_path_factory):
    """A tfds data dir in which cifar10 is prepared, as `tfds build` leaves it, with the sample's images."""
    root = tmp_path_factory.mktemp("tfds")
    features = tfds.features.FeaturesDict(
        {
            "id": tfds.features.Text(),
            "image": tfds.features.Image(shape=(32, 32, 3)),
            "label": tfds.features.ClassLabel(names=SAMPLE.label_names),
        }
    )

    def split(x, y, prefix):
        ids = [f"{prefix}_{i}" for i in range(len(x))]
        return tf.data.Dataset.from_tensor_slices(
            {"id": ids, "image": x, "label": y.astype(np.int64)}
        )

    tfds.dataset_builders.store_as_tfds_dataset(
        name="cifar10",
        version=str(tfds.builder("cifar10").version),
        features=features,
        split_datasets={
            "train": split(SAMPLE.x_train, SAMPLE.y_train, "train"),
            "test": split(SAMPLE.x_test, SAMPLE.y_test, "test"),
        },
        data_dir=root,
        disable_shuffling=True,  # keep the official order, so the arrays can be compared as they are
    )
    return root


def _assert_sample(arrays: CifarArrays) -> None:
    assert arrays.name == "cifar10" and arrays.num_classes == 10
    assert arrays.label_names == SAMPLE.label_names
    assert arrays.y_train.dtype == np.int64
    np.testing.assert_array_equal(arrays.x_train, SAMPLE.x_train)
    np.testing.assert_array_equal(arrays.y_train, SAMPLE.y_train)
    np.testing.assert_array_equal(arrays.x_test, SAMPLE.x_test)
    np.testing.assert_array_equal(arrays.y_test, SAMPLE.y_test)


def test_prepared_data_dir_is_read_without_network(prepared_dir, offline):
    _assert_sample(load_arrays("cifar10", "tfds", data_dir=str(prepared_dir)))


def test_tfds_data_dir_environment_variable_is_honoured(prepared_dir, offline, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(prepared_dir))
    _assert_sample(load_arrays("cifar10"))


def test_mock_data_cifar100(tmp_path, offline):
    """Under tfds.testing.mock_data (metadata only, random examples) the loader yields valid arrays."""
    builder = tfds.builder("cifar100", data_dir=str(tmp_path))
    builder.data_path.mkdir(parents=True)
    builder.info.write_to_directory(builder.data_path)  # what mock_data needs to call it prepared
    with tfds.testing.mock_data(num_examples=24, data_dir=str(tmp_path)):
        arrays = load_arrays("cifar100", "tfds", data_dir="/nonexistent")
    assert arrays.num_classes == 100 and arrays.label_names == CIFAR100_LABELS
    for x, y in ((arrays.x_train, arrays.y_train), (arrays.x_test, arrays.y_test)):
        assert x.shape == (24, 32, 32, 3) and x.dtype == np.uint8
        assert y.shape == (24,) and y.dtype == np.int64 and y.min() >= 0 and y.max() < 100


def _expect_fast_fail(data_dir, budget_s: float) -> str:
    start = time.monotonic()
    with pytest.raises(UserError) as e:
        load_arrays("cifar10", "tfds", data_dir=str(data_dir))
    elapsed = time.monotonic() - start
    assert elapsed < budget_s, f"took {elapsed:.1f}s"
    message = str(e.value)
    assert "\n" not in message
    for hint in (
        "tfds build cifar10",
        "--data-dir",
        "TFDS_DATA_DIR",
        "folder:PATH",
        "cifar10-sample",
    ):
        assert hint in message
    assert str(data_dir) in message
    return message


def test_offline_fails_fast_when_the_host_hangs(tmp_path, monkeypatch):
    """A name lookup or connect that hangs is cut off after PROBE_TIMEOUT_S, not tfds' minutes of retries."""
    release = threading.Event()

    def hanging_connect(*args, **kwargs):
        release.wait(60)
        raise OSError("gave up")

    def no_download(*args, **kwargs):
        raise AssertionError("tfds was asked to download")

    monkeypatch.setattr(tfds_source.socket, "create_connection", hanging_connect)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_download)
    try:
        message = _expect_fast_fail(tmp_path, tfds_source.PROBE_TIMEOUT_S + 2)
    finally:
        release.set()
    assert "www.cs.toronto.edu cannot be reached" in message


def test_offline_fails_fast_when_the_host_refuses(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setitem(
        tfds_source.DOWNLOAD_URLS, "cifar10", f"http://127.0.0.1:{port}/cifar.tar.gz"
    )
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    message = _expect_fast_fail(tmp_path, 2.0)
    assert "127.0.0.1 cannot be reached" in message


def test_probe_goes_to_the_proxy_when_one_is_set(monkeypatch):
    for name in ("no_proxy", "NO_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert tfds_source._probe_address(tfds_source.DOWNLOAD_URLS["cifar10"]) == (
        "proxy.example",
        3128,
    )
    monkeypatch.delenv("HTTPS_PROXY")
    assert tfds_source._probe_address(tfds_source.DOWNLOAD_URLS["cifar10"]) == (
        "www.cs.toronto.edu",
        443,
    )


def test_data_dir_that_is_a_file(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(UserError, match="is not a directory"):
        load_arrays("cifar10", "tfds", data_dir=str(not_a_dir))
