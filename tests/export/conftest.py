"""One small trained model and one full export, shared by the export tests (built once)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

import keras_preact
from export.pipeline import ExportResult, export_model
from keras_preact.datasets import load_sample


@pytest.fixture(scope="session")
def sample():
    """The embedded CIFAR-10 sample (real images)."""
    return load_sample()


@pytest.fixture(scope="session")
def trained_model_path(tmp_path_factory, sample) -> str:
    """ResNet-20 v1 with CIFAR-10 preprocessing inside, trained a few SGD steps on the sample."""
    keras.utils.set_random_seed(0)
    model = keras_preact.ResNet20V1(preprocessing="cifar10")
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss="sparse_categorical_crossentropy",
    )
    model.fit(
        sample.x_train[:512].astype(np.float32),
        sample.y_train[:512],
        batch_size=64,
        epochs=1,
        verbose=0,
    )
    path = tmp_path_factory.mktemp("model") / "resnet20v1.keras"
    model.save(path)
    return str(path)


@pytest.fixture(scope="session")
def keras_model(trained_model_path):
    """The trained model, loaded back from its .keras file (what the export starts from)."""
    return keras_preact.load_model(trained_model_path, compile=False)


@pytest.fixture(scope="session")
def exported(trained_model_path, tmp_path_factory) -> ExportResult:
    """The trained model exported to every format (version 1 of a fresh repository)."""
    return export_model(
        trained_model_path,
        tmp_path_factory.mktemp("repo"),
        labels="cifar10",
        latency_runs=2,
        log=lambda message: None,
    )


@pytest.fixture(scope="session")
def keras_probabilities(keras_model, sample) -> np.ndarray:
    """Keras' probabilities for the sample's 300 test images."""
    return keras_model.predict(sample.x_test.astype(np.float32), batch_size=100, verbose=0)
