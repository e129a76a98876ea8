"""``python -m keras_preact.convert``: what it prints, what it writes (atomically, never over an
existing file unless told), its one-line errors; and a converted network exported and verified
end to end by ``python -m export``, and trained by ``training``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
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

import keras_preact as kp
from keras_preact.convert.__main__ import main
from keras_preact.convert.sources import import_torchvision_models

ROOT = Path(__file__).resolve().parents[2]


def run(args, capsys) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def akamaster(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """A ResNet-20 checkpoint as akamaster's trainer saves it (ImageNet-normalised inputs)."""
    _, x = images(8, 32, "imagenet")
    net = randomize_torch(CifarResNet("v1", 3), seed=7, images=nchw(x))
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    path = tmp_path_factory.mktemp("ckpt") / "resnet20-12fca82f.th"
    torch.save({"state_dict": state, "best_prec1": torch.tensor(91.73)}, path)
    return path, net


def test_converted_resnet20_exports_and_verifies_end_to_end(akamaster, tmp_path, capsys):
    path, net = akamaster
    output = tmp_path / "models" / "resnet20.keras"
    code, out, err = run([path, "--output", output, "--preprocessing", "imagenet"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert (
        lines[0]
        == f"source: PyTorch CIFAR ResNet-20 v1 (PyTorch state dict (.pth, .pt, .th), {path})"
    )
    assert lines[1] == "architecture: ResNet20V1, 10 classes"
    assert lines[2] == "model: resnet20v1, input 32×32, preprocessing imagenet"
    # 19 convolutions, 19 batch norms of 4 tensors, the classifier's 2: 97 tensors, 19 counters.
    assert lines[3] == "mapped: 97 tensors into 39 layers (19 batch-norm step counters ignored)"
    assert "parity: not measured (no installable package defines the pytorch-cifar layout)" in out
    assert lines[-1] == f"wrote {output}"
    assert [p.name for p in output.parent.iterdir()] == ["resnet20.keras"]

    # The file computes the checkpoint's logits from raw pixels.
    model = kp.load_model(output)
    pixels, x = images(8, 32, "imagenet")
    assert_parity(keras_logits(model, pixels), torch_logits(net, x))

    from export.__main__ import main as export_main

    repo = tmp_path / "repo"
    try:
        code = export_main(
            ["--model", str(output), "--output", str(repo), "--labels", "cifar10",
             "--quantize", "float16,dynamic", "--num-images", "64", "--latency-runs", "0"]
        )  # fmt: skip
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    assert code == 0, out + err
    report = json.loads(
        next((repo / "artifacts" / "resnet20v1" / "1").glob("report.json")).read_text()
    )
    assert report["passed"]
    assert {"savedmodel:serving_default", "onnx"} <= {a["name"] for a in report["artifacts"]}
    assert all(a["passed"] for a in report["artifacts"])


def test_converted_checkpoint_trains_through_training(akamaster, tmp_path):
    from training.run.pipeline import TrainConfig, prepare

    path, net = akamaster
    config = TrainConfig(
        model="resnet20v1",
        model_options={"weights": str(path)},
        dataset="cifar10-sample",
        recipe="demo",
        recipe_overrides={"batch_size": 50},
        output=str(tmp_path / "run"),
        seed=0,
    )
    prepared = prepare(config)
    kernel = prepared.model.get_layer("stem_conv").kernel.numpy()
    np.testing.assert_array_equal(kernel, net.conv1.weight.detach().numpy().transpose(2, 3, 1, 0))
    history = prepared.model.fit(
        prepared.train_dataset(), steps_per_epoch=2, epochs=1, verbose=0, shuffle=False
    )
    assert np.isfinite(history.history["loss"]).all()
    assert not np.array_equal(prepared.model.get_layer("stem_conv").kernel.numpy(), kernel)


def test_parity_is_measured_where_the_source_framework_is_installed(tmp_path, capsys):
    models = import_torchvision_models()
    _, x = images(2, 64)
    net = randomize_torch(models.resnet18(num_classes=10), seed=3, images=nchw(x))
    torch.save(net.state_dict(), tmp_path / "resnet18.pth")
    code, out, err = run(
        [tmp_path / "resnet18.pth", "--output", tmp_path / "r18.keras", "--input-size", "64",
         "--parity-images", "2"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    parity = next(line for line in out.splitlines() if line.startswith("parity: "))
    assert parity.startswith("parity: max |Δ logits| ")
    assert "on 2 sample images at 64×64 against torchvision 0.28.0 — ok" in parity
    assert float(parity.split()[4]) <= 1e-4
    assert "architecture: ResNet18V1, 10 classes" in out


def test_an_existing_output_is_kept_unless_overwrite(akamaster, tmp_path, capsys):
    output = tmp_path / "resnet20.keras"
    output.write_bytes(b"precious")
    code, out, err = run([akamaster[0], "--output", output], capsys)
    assert code == 2 and out == ""
    assert err == f"error: --output {str(output)!r} exists; pass --overwrite to replace it\n"
    assert output.read_bytes() == b"precious"
    code, out, err = run([akamaster[0], "--output", output, "--overwrite"], capsys)
    assert code == 0, err
    assert keras.saving.load_model(output).name == "resnet20v1"
    assert [p.name for p in tmp_path.iterdir()] == ["resnet20.keras"]


BAD = {
    "truncated checkpoint": (["{half}"], "truncated or corrupt"),
    "unknown layout": (["{mlp}"], "key layout keras-preact does not know; it understands: torchvision"),
    "another model": (["{ckpt}", "--model", "resnet56v1"], "holds PyTorch CIFAR ResNet-20 v1, which keras-preact builds as keras_preact.ResNet20V1(), not ResNet56V1"),
    "unknown model": (["{ckpt}", "--model", "resnet7v1"], "unknown model 'resnet7v1'"),
    "unknown preprocessing": (["{ckpt}", "--preprocessing", "zca"], "unknown --preprocessing 'zca'"),
    "unknown option_a": (["{ckpt}", "--option-a", "middle"], "unknown option_a 'middle'"),
    "not .keras": (["{ckpt}", "--output", "{tmp}/model.h5"], "must end in .keras"),
    "missing checkpoint": (["{tmp}/none.pth"], "checkpoint not found"),
    "directory checkpoint": (["{tmp}"], "is a directory, not a checkpoint file"),
    "bad classes": (["{ckpt}", "--classes", "0"], "--classes must be a positive integer"),
}  # fmt: skip


def test_bad_input_one_line_exit_2_nothing_written(akamaster, tmp_path, capsys):
    ckpt = akamaster[0]
    (tmp_path / "half.pth").write_bytes(ckpt.read_bytes()[:5000])
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "mlp.pth")
    fill = dict(ckpt=ckpt, half=tmp_path / "half.pth", mlp=tmp_path / "mlp.pth", tmp=tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for case, (args, message) in BAD.items():
        argv = [a.format(**fill) for a in args]
        if "--output" not in argv:
            argv += ["--output", str(tmp_path / "out" / "model.keras")]
        code, out, err = run(argv, capsys)
        assert code == 2 and out == "", case
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, (case, err)
        assert sorted(p.name for p in tmp_path.iterdir()) == before, case  # nothing written


def _refused(code: int, out: str, err: str, *words: str) -> None:
    """Exit 2, one ``error:`` line holding ``words``, nothing printed on stdout."""
    assert code == 2 and out == "", (code, out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err, (word, err)


def test_broken_weights_are_refused_with_and_without_the_source_framework(tmp_path, capsys):
    """NaN weights: exit 2 naming the tensor, nothing written, whether parity can be measured
    (torchvision installed: the source is not run, the converter is not blamed) or not (a child
    process where torch cannot be imported, reading safetensors)."""
    models = import_torchvision_models()
    state = models.resnet18(num_classes=10).state_dict()
    state["layer2.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    output = tmp_path / "out" / "r18.keras"
    code, out, err = run([tmp_path / "nan.pth", "--output", output, "--parity-images", "2"], capsys)
    _refused(code, out, err, "'layer2.0.conv1.weight'", "NaN or infinite")
    assert "parity" not in err and not output.parent.exists()
    # Finite weights whose network overflows: the source itself computes no numbers.
    state["layer2.0.conv1.weight"][0, 0, 0, 0] = 0.0
    state["bn1.bias"].fill_(3e38)
    torch.save(state, tmp_path / "overflow.pth")
    code, out, err = run(
        [tmp_path / "overflow.pth", "--output", output, "--parity-images", "2"], capsys
    )
    assert code == 2 and "parity: " not in out and not output.parent.exists(), (code, out, err)
    assert err.count("\n") == 1 and "torchvision 0.28.0 itself computes non-finite logits" in err

    from safetensors.torch import save_file

    state = CifarResNet("v1", 3).state_dict()
    state["bn1.running_var"][3] = float("inf")
    save_file(state, tmp_path / "inf.safetensors")
    code = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] in ('torch', 'torchvision', 'timm'):\n"
        "            raise ImportError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from keras_preact.convert.__main__ import main\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "inf.safetensors"), "--output", str(output)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    _refused(result.returncode, result.stdout, result.stderr, "'bn1.running_var'", "infinite")
    assert not output.parent.exists()


def test_an_output_that_cannot_be_written_is_refused_before_converting(akamaster, tmp_path, capsys):
    """Below a file, where nothing can be created, or in a folder nobody may write into (sysfs
    refuses new files also to root, whom permission bits do not stop): one line, exit 2 (exit 1
    means a failed parity), before any conversion line; nothing is written and the file in the
    way is kept."""
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    for output, reason in (
        (blocker / "sub" / "model.keras", "is a file, not a folder"),
        (Path("/proc/keras-preact/model.keras"), "No such file or directory"),
        (Path("/sys/model.keras"), "Permission denied"),
    ):
        code, out, err = run([akamaster[0], "--output", output], capsys)
        _refused(code, out, err, f"cannot write --output {str(output)!r}", reason)
    assert blocker.read_text() == "keep me"
    assert list(tmp_path.iterdir()) == [blocker]


def test_the_output_cannot_be_the_checkpoint_itself(akamaster, tmp_path, capsys):
    checkpoint = tmp_path / "resnet20.keras"  # a PyTorch file, named as the user chose
    checkpoint.write_bytes(akamaster[0].read_bytes())
    code, out, err = run([checkpoint, "--output", checkpoint, "--overwrite"], capsys)
    _refused(code, out, err, "is the checkpoint itself")
    assert checkpoint.read_bytes() == akamaster[0].read_bytes()
