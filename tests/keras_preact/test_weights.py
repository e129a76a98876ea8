"""Named weights (``weights="imagenet"``, ``"cifar10"``, ``"torchvision:IMAGENET1K_V1"``): the
published table against the installed sources' own code; fetch, verify, convert once and cache,
served from 127.0.0.1 (checkpoints generated here, in each source's own format); every fault of a
download; the commands that take a name."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from convert_helpers import (
    CifarResNet,
    assert_parity,
    images,
    keras_logits,
    nchw,
    randomize_torch,
    torch_logits,
)
from weights_server import Server

import keras_preact as kp
import keras_preact.convert.plan
import keras_preact.weights as weights_lib
from keras_preact.weights import ENTRIES

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh cache per test, and no mirror unless a test sets one."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("KERAS_PREACT_CACHE", str(folder))
    monkeypatch.delenv("KERAS_PREACT_WEIGHTS_MIRROR", raising=False)
    return folder / "weights"


@pytest.fixture
def conversions(monkeypatch) -> list[str]:
    """The checkpoints converted (``keras_preact.convert.plan.plan_checkpoint`` calls)."""
    calls: list[str] = []
    real = keras_preact.convert.plan.plan_checkpoint

    def counted(checkpoint, *args, **kwargs):
        calls.append(str(checkpoint))
        return real(checkpoint, *args, **kwargs)

    monkeypatch.setattr(keras_preact.convert.plan, "plan_checkpoint", counted)
    return calls


@pytest.fixture(scope="module")
def akamaster(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """A ResNet-20 (option A) saved as akamaster's trainer saves it: ``{"state_dict": module.*}``."""
    _, x = images(8, 32, "imagenet")
    net = randomize_torch(CifarResNet("v1", 3), seed=11, images=nchw(x))
    path = tmp_path_factory.mktemp("akamaster") / "resnet20.th"
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "best_prec1": torch.tensor(91.73)}, path)
    return path, net


def _entry(qualified: str, model: str):
    return next(e for e in weights_lib.ENTRIES if (e.qualified, e.model) == (qualified, model))


# ------------------------------------------------------------------------------------------------
# The table


def test_table_agrees_with_torchvision_timm_and_keras():
    from keras.src.applications import resnet as keras_resnet

    from keras_preact.convert.sources import import_timm, import_torchvision_models

    models = import_torchvision_models()
    rows = [e for e in ENTRIES if e.source == "torchvision"]
    assert len(rows) == 8
    for entry in rows:
        depth = int(entry.model.removeprefix("resnet").removesuffix("v1"))
        published = getattr(models, f"ResNet{depth}_Weights")[entry.tag]
        assert entry.url == published.url
        assert entry.file_name == published.url.rsplit("/", 1)[-1]
        # torch.hub's convention: the file name carries the first hex digits of the SHA-256.
        assert entry.file_name.split("-")[-1].split(".")[0] == entry.file_hash
        assert (
            entry.published
            == f"ImageNet top-1 {published.meta['_metrics']['ImageNet-1K']['acc@1']:.3f} %"
        )
        assert len(published.meta["categories"]) == entry.classes
        assert entry.options.get("bottleneck_stride") == ("3x3" if depth >= 50 else None)

    rows = [e for e in ENTRIES if e.source == "keras.applications"]
    assert [e.model for e in rows] == ["resnet50v1", "resnet101v1", "resnet152v1"]
    for entry in rows:
        name = entry.model.removesuffix("v1")
        assert entry.url == keras_resnet.BASE_WEIGHTS_PATH + entry.file_name
        assert entry.file_name == f"{name}_weights_tf_dim_ordering_tf_kernels.h5"
        assert entry.file_hash == keras_resnet.WEIGHTS_HASHES[name][0]
        assert entry.hash_kind == "md5" and entry.preprocessing == "imagenet_caffe"

    timm = import_timm()
    rows = [e for e in ENTRIES if e.source == "timm"]
    assert [e.model for e in rows] == ["resnet50v2", "resnet101v2"]
    for entry in rows:
        depth = entry.model.removeprefix("resnet").removesuffix("v2")
        cfg = timm.models.get_pretrained_cfg(f"resnetv2_{depth}.{entry.tag}")
        assert entry.url.startswith(f"https://huggingface.co/{cfg.hf_hub_id}/resolve/")
        assert entry.url.endswith("/model.safetensors")
        assert kp.DATASET_STATS[entry.preprocessing] == (cfg.mean, cfg.std)
        assert cfg.license in entry.licence and cfg.num_classes == entry.classes

    # Every name is unique per model, every file name unique, every model a keras-preact one.
    assert len({(e.model, e.qualified) for e in ENTRIES}) == len(ENTRIES)
    assert len({e.file_name for e in ENTRIES}) == len(ENTRIES)
    assert {e.model for e in ENTRIES} <= set(kp.MODEL_NAMES)
    for e in ENTRIES:
        info = kp.resolve_model(e.model)
        assert (info.family, info.version, info.depth, info.unit) == (
            e.family,
            e.version,
            e.depth,
            e.unit,
        )
    assert {e.preprocessing for e in ENTRIES} <= set(kp.DATASET_STATS)


def test_list_weights_and_its_command(capsys):
    assert kp.list_weights() == ENTRIES
    assert [e.qualified for e in kp.list_weights("ResNet50V1")] == [
        "keras.applications:imagenet",
        "torchvision:IMAGENET1K_V2",
        "torchvision:IMAGENET1K_V1",
    ]
    assert kp.list_weights("resnet200v2") == ()
    with pytest.raises(ValueError, match=r"unknown model .resnet51v1.; expected one of ResNet20V1"):
        kp.list_weights("resnet51v1")
    from keras_preact.weights.__main__ import main

    assert main(["--model", "resnet20v1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("resnet20v1  akamaster:cifar10")
    assert "ResNet20V1(weights='cifar10', projection='A')" in lines[0]
    assert "CIFAR-10 test error 8.27 %" in lines[0]
    assert "ResNet20V1(weights='cifar100', projection='B')" in lines[2]
    with pytest.raises(SystemExit) as exit_:
        main(["--model", "resnet200v2"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: no published weights hold resnet200v2; see python -m keras_preact.weights"
    )


# ------------------------------------------------------------------------------------------------
# Which file a name picks (no download)


@pytest.mark.parametrize(
    ("factory", "weights", "options", "picked"),
    [
        ("ResNet50V1", "imagenet", {}, "keras.applications:imagenet"),
        ("ResNet50V1", "imagenet", {"bottleneck_stride": "3x3"}, "torchvision:IMAGENET1K_V2"),
        ("ResNet50V1", "torchvision:IMAGENET1K_V1", {"bottleneck_stride": "3x3"}, "torchvision:IMAGENET1K_V1"),
        ("ResNet18V1", "imagenet", {}, "torchvision:IMAGENET1K_V1"),
        ("ResNet101V2", "imagenet", {}, "timm:a1h_in1k"),
        ("ResNet20V1", "cifar10", {}, "akamaster:cifar10"),
        ("ResNet20V1", "cifar10", {"projection": "B"}, "chenyaofo:cifar10"),
        ("ResNet56V1", "cifar100", {"projection": "B"}, "chenyaofo:cifar100"),
    ],
)  # fmt: skip
def test_the_model_arguments_pick_the_file(factory, weights, options, picked):
    info = kp.resolve_model(factory)
    arch = kp.architecture(info.depth, info.version, info.family, info.unit, **options)
    assert weights_lib.choose(weights, arch, model_name=info.key).qualified == picked


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: kp.ResNet50V1(weights="torchvision:IMAGENET1K_V1"),
         "weights='torchvision:IMAGENET1K_V1' for resnet50v1: torchvision:IMAGENET1K_V1 needs "
         "bottleneck_stride='3x3' (the model has '1x1'): build "
         "keras_preact.ResNet50V1(weights='torchvision:IMAGENET1K_V1', bottleneck_stride='3x3')"),
        (lambda: kp.ResNet20V1(weights="cifar100"),
         "weights='cifar100' for resnet20v1: chenyaofo:cifar100 needs projection='B' (the model "
         "has 'A'): build keras_preact.ResNet20V1(weights='cifar100', projection='B')"),
        (lambda: kp.ResNet200V2(weights="imagenet"),
         "no published imagenet weights hold resnet200v2; named weights exist for: resnet18v1 "
         "(imagenet); resnet34v1 (imagenet); resnet50v1 (imagenet)"),
        (lambda: kp.ResNet110V1(weights="cifar100"), "no published cifar100 weights hold resnet110v1"),
        (lambda: kp.ResNet34V1(weights="timm:a1h_in1k"),
         "weights='timm:a1h_in1k' exist for resnet50v2, resnet101v2, not for resnet34v1; "
         "resnet34v1 has torchvision:IMAGENET1K_V1"),
        (lambda: kp.ResNet34V1(weights="torchvision:IMAGENET1K_V9"),
         "unknown weights 'torchvision:IMAGENET1K_V9' for resnet34v1; its named weights: "
         "torchvision:IMAGENET1K_V1"),
        (lambda: kp.Plain18V1(weights="imagenet"), "plain18v1: torchvision:IMAGENET1K_V1 needs shortcut='identity'"),
        (lambda: kp.ResNet18V1(weights="https://example.com/r18.pth"), "keras-preact fetches only the published weights it names"),
    ],
)  # fmt: skip
def test_a_name_that_does_not_fit_is_refused_in_one_line(call, message, server):
    with pytest.raises(ValueError) as e:
        call()
    assert message in str(e.value)
    assert "\n" not in str(e.value)
    assert server.requests == []


# ------------------------------------------------------------------------------------------------
# First fetch, then the cache alone


def test_first_use_fetches_and_converts_then_the_cache_alone_serves(
    akamaster, server, conversions, cache, monkeypatch
):
    path, net = akamaster
    entry = server.publish("akamaster:cifar10", "resnet20v1", path, monkeypatch)
    model = kp.ResNet20V1(weights="cifar10")
    # The checkpoint's network, its classifier and the normalisation it was trained with.
    assert model.get_layer("preprocess") is not None and model.output_shape == (None, 10)
    pixels, x = images(8, 32, "imagenet")
    assert_parity(keras_logits(model, pixels), torch_logits(net, x))
    assert server.requests == [entry.file_name] and len(conversions) == 1
    assert (cache / "downloads" / entry.file_name).read_bytes() == path.read_bytes()
    [meta_path] = (cache / "converted").glob("*.json")
    meta = json.loads(meta_path.read_text())
    assert meta["source_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta["entry"] == "akamaster:cifar10" and meta["classifier"] is True
    assert meta["keras_preact"] == kp.__version__ and meta["options"]["projection"] == "A"

    server.stop()  # no network from here on
    again = kp.get_model("resnet20v1", weights="cifar10")
    assert len(conversions) == 1
    assert_parity(keras_logits(again, pixels), torch_logits(net, x))

    # A feature extractor and a new classifier from the same cache entry, no conversion either.
    features = kp.ResNet20V1(weights="akamaster:cifar10", include_top=False, pooling="avg")
    assert features.output_shape == (None, 64) and "logits" not in [
        la.name for la in features.layers
    ]
    new = kp.ResNet20V1(weights="cifar10", classes=3, preprocessing=None)
    assert new.output_shape == (None, 3) and "preprocess" not in [la.name for la in new.layers]
    np.testing.assert_array_equal(
        new.get_layer("stage3_unit3_conv2").get_weights()[0],
        again.get_layer("stage3_unit3_conv2").get_weights()[0],
    )
    assert len(conversions) == 1 and list(cache.glob("downloads/.*.part")) == []


def test_a_damaged_cache_entry_is_rebuilt_and_a_tampered_download_fetched_again(
    akamaster, server, conversions, cache, monkeypatch, capsys
):
    path, net = akamaster
    entry = server.publish("akamaster:cifar10", "resnet20v1", path, monkeypatch)
    kp.ResNet20V1(weights="cifar10")
    [weights_file] = (cache / "converted").glob("*.h5")
    data = bytearray(weights_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights_file.write_bytes(bytes(data))
    download = cache / "downloads" / entry.file_name
    download.write_bytes(download.read_bytes()[:-100] + b"\0" * 100)
    capsys.readouterr()

    model = kp.ResNet20V1(weights="cifar10")
    pixels, x = images(4, 32, "imagenet")
    assert_parity(keras_logits(model, pixels), torch_logits(net, x))
    assert len(conversions) == 2 and server.requests == [entry.file_name] * 2
    printed = capsys.readouterr().out
    assert (
        f"weights: the cached conversion {weights_file} is damaged or missing: converting again"
        in printed
    )
    assert f"weights: {download} is not the published file" in printed
    assert download.read_bytes() == path.read_bytes()

    # Tampered again, and nothing to fetch it from: one line, and the bad file is not used.
    download.write_bytes(b"not the checkpoint")
    for f in (cache / "converted").iterdir():
        f.unlink()
    server.stop()
    with pytest.raises(
        ValueError, match=f"cannot fetch akamaster:cifar10 weights from {entry.url}: "
    ):
        kp.ResNet20V1(weights="cifar10")
    assert not download.exists() and len(conversions) == 2


def test_a_mirror_serves_the_files_under_their_names_with_the_same_checks(
    akamaster, server, monkeypatch, cache
):
    path, _ = akamaster
    entry = server.publish("akamaster:cifar10", "resnet20v1", path, monkeypatch)
    dead = entry.url.replace(f":{server.port}/", ":9/")  # the source is unreachable
    monkeypatch.setattr(
        weights_lib, "ENTRIES", tuple(e.__class__(**{**e.__dict__, "url": dead}) if e == entry else e for e in weights_lib.ENTRIES)
    )  # fmt: skip
    server.files["sub/" + entry.file_name] = server.files.pop(entry.file_name)
    monkeypatch.setenv("KERAS_PREACT_WEIGHTS_MIRROR", server.url + "/sub/")
    kp.ResNet20V1(weights="cifar10")
    assert server.requests == ["sub/" + entry.file_name]

    # The mirror's file is checked as the source's: a different file is refused.
    for f in cache.rglob("*"):
        if f.is_file():
            f.unlink()
    server.files["sub/" + entry.file_name] = path.read_bytes()[::-1]
    with pytest.raises(
        ValueError, match="the file fetched is not the published one \\(its SHA-256"
    ):
        kp.ResNet20V1(weights="cifar10")
    assert sorted(p.name for p in (cache / "downloads").iterdir()) == [f".{entry.file_name}.lock"]


# ------------------------------------------------------------------------------------------------
# Faults: one line naming the URL, the cache and weights=PATH; nothing left behind


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (404, "HTTP 404 Not Found"),
        (500, "HTTP 500 Internal Server Error"),
        ("drop", "the connection closed before the end of the file"),
        ("refused", "no connection ("),
        ("dns", "the host name does not resolve (no network or DNS failure"),
    ],
)
def test_a_failed_download_is_one_line_and_leaves_nothing(
    fault, reason, akamaster, server, cache, monkeypatch
):
    path, _ = akamaster
    entry = server.publish("akamaster:cifar10", "resnet20v1", path, monkeypatch)
    url = entry.url
    if fault == "refused":
        server.stop()
    elif fault == "dns":
        url = f"http://weights.keras-preact.invalid/{entry.file_name}"
        monkeypatch.setenv("KERAS_PREACT_WEIGHTS_MIRROR", "http://weights.keras-preact.invalid")
    else:
        server.faults[entry.file_name] = fault
    with pytest.raises(ValueError) as e:
        kp.ResNet20V1(weights="cifar10")
    message = str(e.value)
    assert message.startswith(f"cannot fetch akamaster:cifar10 weights from {url}: {reason}")
    assert f"nothing was saved in {cache / 'downloads'}" in message
    assert "pass weights=PATH" in message and "\n" not in message
    assert [p.name for p in (cache / "downloads").iterdir()] == [f".{entry.file_name}.lock"]
    assert not (cache / "converted").exists()


def test_an_unwritable_cache_is_one_line(akamaster, server, tmp_path, monkeypatch):
    path, _ = akamaster
    server.publish("akamaster:cifar10", "resnet20v1", path, monkeypatch)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("KERAS_PREACT_CACHE", str(blocker / "cache"))
    with pytest.raises(ValueError) as e:
        kp.ResNet20V1(weights="cifar10")
    assert str(e.value).startswith(
        f"cannot cache akamaster:cifar10 weights in {blocker}/cache/weights/downloads: Not a directory; "
        "set KERAS_PREACT_CACHE to a writable folder, or fetch"
    )
    assert server.requests == []


def _child(script: str, env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        env={
            **os.environ,
            "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests' / 'keras_preact'}",
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


_PATCH = """
    import dataclasses, os, sys
    import keras_preact.weights as W
    old = next(e for e in W.ENTRIES if (e.qualified, e.model) == ("akamaster:cifar10", "resnet20v1"))
    new = dataclasses.replace(old, url=os.environ["URL"], file_hash=os.environ["HASH"])
    W.ENTRIES = tuple(new if e is old else e for e in W.ENTRIES)
"""


def _child_env(server, entry, cache: Path) -> dict[str, str]:
    # Keras' NumPy backend: the child fetches only, without loading TensorFlow (seconds).
    return {
        "URL": entry.url,
        "HASH": entry.file_hash,
        "KERAS_PREACT_CACHE": str(cache.parent),
        "KERAS_BACKEND": "numpy",
    }


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_leaves_nothing(akamaster, server, cache, monkeypatch):
    path, _ = akamaster
    entry = server.publish("akamaster:cifar10", "resnet20v1", path, monkeypatch)
    child = _child(
        _PATCH
        + """
    import resource, signal
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
    try:
        W.fetch.fetch(new)
    except W.WeightsUnavailable as e:
        print(e)
    """,
        _child_env(server, entry, cache),
    )
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert (
        f"cannot fetch akamaster:cifar10 weights from {entry.url}: cannot write {cache / 'downloads'}: "
        "File too large; nothing was saved"
    ) in out
    assert [p.name for p in (cache / "downloads").iterdir()] == [f".{entry.file_name}.lock"]


@pytest.mark.slow
def test_two_processes_fetch_one_file_once(akamaster, server, cache, monkeypatch):
    path, _ = akamaster
    entry = server.publish("akamaster:cifar10", "resnet20v1", path, monkeypatch)
    server.faults[entry.file_name] = "slow"
    script = _PATCH + "\n    p, h = W.fetch.fetch(new, log=lambda s: None)\n    print(h)\n"
    children = [_child(script, _child_env(server, entry, cache)) for _ in range(2)]
    results = [c.communicate(timeout=120) for c in children]
    assert [c.returncode for c in children] == [0, 0], results
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert [out.strip().splitlines()[-1] for out, _ in results] == [digest, digest]
    assert server.requests == [entry.file_name]
    assert sorted(p.name for p in (cache / "downloads").iterdir()) == [
        f".{entry.file_name}.lock",
        entry.file_name,
    ]


@pytest.mark.slow
def test_ctrl_c_mid_download_leaves_nothing(akamaster, server, cache, tmp_path, monkeypatch):
    path, _ = akamaster
    entry = server.publish("akamaster:cifar10", "resnet20v1", path, monkeypatch)
    server.faults[entry.file_name] = "stall"
    output = tmp_path / "r20.keras"
    child = _child(
        _PATCH
        + f"""
    from keras_preact.convert.__main__ import main
    sys.exit(main(["cifar10", "--model", "resnet20v1", "--output", {str(output)!r}]))
    """,
        _child_env(server, entry, cache),
    )
    deadline = time.monotonic() + 120
    while not list((cache / "downloads").glob(".*.part")) or not server.requests:
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.1)
    time.sleep(0.3)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted"
    assert (
        f"cannot fetch akamaster:cifar10 weights from {entry.url}: interrupted; nothing was saved "
        f"in {cache / 'downloads'}. fetch {entry.url} by hand and pass weights=PATH"
    ) in out
    assert [p.name for p in (cache / "downloads").iterdir()] == [f".{entry.file_name}.lock"]
    assert not output.exists()


# ------------------------------------------------------------------------------------------------
# Each source's path end to end


@pytest.fixture(scope="module")
def torchvision_resnet18(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """torchvision's resnet18, random, batch norms randomised, saved as torchvision publishes it."""
    from keras_preact.convert.sources import import_torchvision_models

    _, x = images(2, 64, "imagenet")
    net = randomize_torch(import_torchvision_models().resnet18(), seed=3, images=nchw(x))
    path = tmp_path_factory.mktemp("torchvision") / "resnet18.pth"
    torch.save(net.state_dict(), path)
    return path, net


def test_torchvision_weights_by_qualified_name_and_the_convert_command(
    torchvision_resnet18, server, conversions, monkeypatch, tmp_path, capsys
):
    from keras_preact.convert.__main__ import main

    path, net = torchvision_resnet18
    entry = server.publish("torchvision:IMAGENET1K_V1", "resnet18v1", path, monkeypatch)
    model = kp.ResNet18V1(weights="torchvision:IMAGENET1K_V1", input_shape=(64, 64, 3))
    pixels, x = images(2, 64, "imagenet")
    assert_parity(keras_logits(model, pixels), torch_logits(net, x))
    assert model.output_shape == (None, 1000) and len(conversions) == 1
    capsys.readouterr()

    # The command fetches nothing more (the file is cached), converts and measures the parity
    # against torchvision's own network; the .keras file takes raw pixels (export needs no flag).
    output = tmp_path / "r18.keras"
    code = main(
        ["imagenet", "--model", "resnet18v1", "--output", str(output), "--parity-images", "2"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.splitlines()[0].startswith(
        "weights: torchvision:IMAGENET1K_V1 (ImageNet top-1 69.758 % as its source publishes it), "
    )
    assert "model: resnet18v1, input 224×224, preprocessing imagenet" in out
    assert "against torchvision 0.28.0 — ok" in out and server.requests == [entry.file_name]
    saved = kp.load_model(output)
    assert saved.get_layer("preprocess") is not None

    with pytest.raises(SystemExit) as exit_:
        main(["imagenet", "--output", str(tmp_path / "x.keras")])
    assert exit_.value.code == 2
    assert (
        "'imagenet' names published weights: say for which model with --model"
        in capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        main(["cifar100", "--model", "resnet110v1", "--output", str(tmp_path / "x.keras")])
    assert (
        "no published weights 'cifar100' for resnet110v1; it has akamaster:cifar10 (cifar10)"
        in capsys.readouterr().err
    )


@pytest.mark.slow
def test_resnet50v1_imagenet_is_keras_applications_and_resnet50v2_is_timm(
    server, monkeypatch, tmp_path, cache
):
    """The default ImageNet weights of the two ResNet-50s, each in its source's format: the MD5
    that keras.applications publishes, checked; timm's file, whose SHA-256 is recorded on first
    fetch and a different file refused afterwards."""
    from safetensors.torch import save_file
    from test_convert_keras_applications import bgr_logits, source_with_weights

    from keras_preact.convert.sources import import_timm

    size = 64
    keras_file = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
    source = source_with_weights(50, keras_file, size, 1000, seed=5)
    server.publish("keras.applications:imagenet", "resnet50v1", keras_file, monkeypatch)
    model = kp.ResNet50V1(weights="imagenet", input_shape=(size, size, 3))
    assert model.get_layer("preprocess") is not None  # imagenet_caffe: raw RGB pixels in
    pixels, x = images(2, size, "imagenet_caffe")
    assert_parity(keras_logits(model, pixels), bgr_logits(source, x))

    _, x = images(2, size, "imagenet_inception")
    net = randomize_torch(import_timm().create_model("resnetv2_50"), seed=6, images=nchw(x))
    timm_file = tmp_path / "model.safetensors"
    save_file(net.state_dict(), timm_file)
    entry = server.publish("timm:a1h_in1k", "resnet50v2", timm_file, monkeypatch)
    assert entry.hash_kind == "none"
    model = kp.ResNet50V2(weights="imagenet", input_shape=(size, size, 3))
    pixels, x = images(2, size, "imagenet_inception")
    assert_parity(keras_logits(model, pixels), torch_logits(net, x))
    known = json.loads((cache / "known-sha256.json").read_text())
    assert known == {"timm:a1h_in1k": hashlib.sha256(timm_file.read_bytes()).hexdigest()}

    # The file changes at the source: refused, although the source publishes no hash.
    (cache / "downloads" / entry.file_name).unlink()
    for f in (cache / "converted").iterdir():
        f.unlink()
    server.files[entry.file_name] = server.files[entry.file_name][:-8] + b"\0" * 8
    with pytest.raises(ValueError, match="but the file first fetched for timm:a1h_in1k had"):
        kp.ResNet50V2(weights="imagenet")
    assert not (cache / "downloads" / entry.file_name).exists()
