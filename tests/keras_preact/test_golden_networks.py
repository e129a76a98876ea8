"""The networks are those keras-preact 0.2 built, and its ``.keras`` files still load.

Every named factory (but ResNet-1001 and -1202) and every option of the v2 paper's ablations,
alone on the smallest network of each family and unit and in every combination on ResNet-8 and
ResNet-11: the same layers in the same order with the same names, classes and parameter counts,
and the same outputs for the same weights (``golden_networks.py`` made the records).
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from golden_networks import (
    GOLDEN,
    KERAS_FILES,
    SAVED,
    build,
    fingerprint,
    layer_listing,
    networks,
    outputs,
    record,
)

import keras_preact as kp

RECORDS = json.loads(GOLDEN.read_text())["networks"]


def _slow(key: str) -> bool:
    entry = RECORDS[key]
    return entry["layer_count"] > 150 or entry["params"]["total"] > 5_000_000


def assert_same_outputs(actual: dict[str, np.ndarray], expected: dict[str, dict]) -> None:
    assert sorted(actual) == sorted(expected)
    for name, want in expected.items():
        got = fingerprint(actual[name])
        assert got["shape"] == want["shape"], name
        scale = max(want["abs_sum"] / max(len(want["values"]), 1), 1e-3)
        np.testing.assert_allclose(got["values"], want["values"], rtol=1e-4, atol=1e-5 * scale)
        np.testing.assert_allclose(
            [got["sum"], got["abs_sum"]],
            [want["sum"], want["abs_sum"]],
            rtol=1e-4,
            atol=1e-5 * want["abs_sum"],
        )


def test_the_records_cover_the_networks_listed():
    assert {key: RECORDS[key]["spec"] for key in RECORDS} == networks()
    covered = {RECORDS[key]["spec"]["call"] for key in RECORDS}
    assert covered >= {*kp.FACTORY_NAMES} - {"ResNet1001V2", "ResNet1202V1"}
    assert len(RECORDS) > 300


@pytest.mark.parametrize(
    "key", [pytest.param(k, marks=[pytest.mark.slow] if _slow(k) else []) for k in RECORDS]
)
def test_network_is_unchanged(key):
    assert_same_network(build(RECORDS[key]["spec"]), RECORDS[key])


def assert_same_network(model: keras.Model, expected: dict) -> None:
    actual = record(model)
    if "layers" in expected:
        assert layer_listing(model) == expected["layers"]
    for field in ("name", "layer_count", "layers_sha256", "params"):
        assert actual[field] == expected[field], field
    assert_same_outputs(outputs(model), expected["outputs"])


@pytest.mark.parametrize("key", SAVED)
def test_keras_file_saved_by_0_2_loads_and_gives_the_same_outputs(key):
    path = KERAS_FILES / f"{key}.keras"
    expected = RECORDS[key]
    for load in (kp.load_model, keras.saving.load_model):
        loaded = load(path)
        assert_same_network(loaded, expected)
    # Its weights load into the network this version builds, with exactly the same outputs.
    rebuilt = build(expected["spec"], fixed_weights=False)
    rebuilt.load_weights(path)
    for name, values in outputs(rebuilt).items():
        np.testing.assert_array_equal(values, outputs(loaded)[name])
