"""CIFAR-10/100 from tensorflow_datasets, failing fast (not after minutes of retries) when it cannot work.

Offline, ``tfds.load`` retries the download for minutes before it fails, so before asking tfds for anything
this checks whether the dataset is already prepared in the data dir and, if not, whether the download host
answers within a few seconds; if neither, it stops with one line that says what to do instead.
"""

from __future__ import annotations

import socket
import threading
import urllib.parse
import urllib.request

import numpy as np

from keras_preact.command_line import UserError
from keras_preact.labels import label_names
from training.data.cifar.arrays import CifarArrays, make_arrays

# What tfds' cifar builders download (tensorflow_datasets/image_classification/cifar.py).
DOWNLOAD_URLS = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
}
PROBE_TIMEOUT_S = 3.0
"""How long the download host gets to accept a connection before we call it unreachable."""


def _probe_address(url: str) -> tuple[str, int]:
    """The (host, port) a download of ``url`` connects to first: the proxy when one applies."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname):
        proxy_parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return proxy_parts.hostname, proxy_parts.port or 80
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def reachable(host: str, port: int, timeout: float | None = None) -> bool:
    """Whether ``host:port`` accepts a TCP connection within ``timeout`` seconds (default
    ``PROBE_TIMEOUT_S``), DNS lookup included (a daemon thread: the socket timeout omits it)."""
    timeout = PROBE_TIMEOUT_S if timeout is None else timeout
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True, name="tfds-download-probe")
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _to_numpy(ds) -> tuple[np.ndarray, np.ndarray]:
    """All (image, label) pairs of a split as two arrays, read in chunks (not ``batch_size=-1``: it
    batches by the split sizes in the dataset info, and where those are unknown, e.g.
    ``tfds.testing.mock_data`` without metadata, by sys.maxsize, which aborts the process)."""
    batches = list(ds.batch(5000).as_numpy_iterator())
    if not batches:
        return np.zeros((0, 32, 32, 3), np.uint8), np.zeros((0,), np.int64)
    images, labels = zip(*batches, strict=True)
    return np.concatenate(images), np.concatenate(labels)


def load_tfds(dataset: str, data_dir: str | None) -> CifarArrays:
    """Load ``dataset`` ("cifar10" or "cifar100") with tfds from the data dir
    (``tf_shared.open_builder``), preparing it first if it is not yet (see the module docstring)."""
    # Imported here: loading CIFAR from another source imports no TensorFlow (JAX trains without it).
    import tensorflow as tf

    from training.data.tf_shared import open_builder

    builder, root, prepared = open_builder(dataset, data_dir)
    if not prepared:
        host, port = _probe_address(DOWNLOAD_URLS[dataset])
        if not reachable(host, port):
            raise UserError(
                f"{dataset} is not prepared in the tfds data dir {root} and its download host "
                f"{host} cannot be reached: run `tfds build {dataset} --data_dir DIR` on a machine "
                "with internet and point --data-dir (or TFDS_DATA_DIR) at DIR, or pass "
                "--data-source folder:PATH with the official CIFAR archives, or use --dataset "
                "cifar10-sample"
            )
        try:
            builder.download_and_prepare()
        except Exception as e:  # tfds raises many kinds; all mean the same thing to the user
            raise UserError(
                f"tfds could not download and prepare {dataset} in {root} ({type(e).__name__}: {e})"
            ) from None
    try:
        train, test = builder.as_dataset(split=["train", "test"], as_supervised=True)
        (x_train, y_train), (x_test, y_test) = _to_numpy(train), _to_numpy(test)
    except (tf.errors.OpError, OSError, ValueError) as e:
        raise UserError(f"tfds could not read {dataset} from {builder.data_dir}: {e}") from None
    names = tuple(builder.info.features["label"].names)
    if names == tuple(map(str, range(len(names)))):  # tfds recorded only digits
        names = label_names(dataset)
    origin = f"tfds {dataset} in {builder.data_dir}"
    return make_arrays(dataset, x_train, y_train, x_test, y_test, names, origin=origin)
