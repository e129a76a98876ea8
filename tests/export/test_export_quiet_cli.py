"""The export commands print their own lines only: TensorFlow's log lines are hidden unless asked
for (real child processes, as a user runs them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from export import repository
from keras_preact.native_logs import is_native_log_line

ROOT = Path(__file__).resolve().parents[2]


def command_env() -> dict[str, str]:
    """The environment of a user who has not set TF_CPP_MIN_LOG_LEVEL (the tests set it)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def run(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *argv],
        env=command_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("module", ["export", "export.client", "export.local_server"])
def test_help_answers_without_loading_tensorflow(module):
    proc = run("-X", "importtime", "-m", module, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: python -m {module}")
    assert "--native-logs" in proc.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()]
    assert imported and not [m for m in imported if m.split(".")[0] in ("tensorflow", "keras")]
    assert run("-m", module, "--help").stderr == ""


def test_export_run_prints_only_its_own_lines(trained_model_path, tmp_path):
    # A killed export left its staging folder; a running one is exporting next to it.
    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait()
    prefix = repository._staging_prefix()
    stale = tmp_path / "repo" / f"{prefix}{killed.pid}-k1"
    live = tmp_path / "repo" / f"{prefix}{os.getpid()}-k2"
    for folder in (stale, live):
        (folder / "savedmodel").mkdir(parents=True)
    proc = run(
        "-m",
        "export",
        "--model",
        trained_model_path,
        "--output",
        str(tmp_path / "repo"),
        "--formats",
        "savedmodel,tflite",
        "--quantize",
        "int8",  # the converter's chatter, and LiteRT's
        "--num-images",
        "8",
        "--latency-runs",
        "0",
    )
    assert proc.returncode == 0, proc.stderr
    expected = [
        rf"removed 1 staging folder left by killed exports: {stale.name}",
        r"exporting 'resnet20v1' version 1 \(32x32, 10 classes, source dtype policy float32, "
        r"preprocessing: model\)",
        r"savedmodel: 4 signatures \+ warm-up requests \(\d+\.\d s\)",
        r"tflite: float32, int8 \(\d+\.\d s\)",
        r"verifying 5 artifacts on 8 real images",
        r"published: version 1 \(\d+ s\)",
    ]
    lines = proc.stderr.splitlines()
    assert len(lines) == len(expected), proc.stderr
    for line, pattern in zip(lines, expected, strict=True):
        assert re.fullmatch(pattern, line), proc.stderr
    assert "tflite:int8" in proc.stdout and "exported 'resnet20v1' version 1" in proc.stdout
    assert not stale.exists() and live.is_dir()


def test_error_after_tensorflow_loaded_is_one_line_and_native_logs_show_on_request(tmp_path):
    # Decoding the image for --send pixels loads TensorFlow, then fails on the bad file.
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    argv = ["-m", "export.client", str(broken), "--model", "m", "--send", "pixels"]
    quiet = run(*argv)
    assert quiet.returncode == 2
    assert quiet.stderr.startswith("error: cannot decode image broken.png: ")
    assert quiet.stderr.count("\n") == 1, quiet.stderr
    shown = run(*argv, "--native-logs")
    assert shown.returncode == 2
    lines = shown.stderr.splitlines()
    assert quiet.stderr.strip() in lines
    assert sum(is_native_log_line(line) for line in lines) >= 3, shown.stderr


def test_openvino_export_prints_only_its_own_lines(trained_model_path, tmp_path):
    # OpenVINO's converter and NNCF's calibration (progress bars, telemetry) stay silent.
    proc = run(
        "-m",
        "export",
        "--model",
        trained_model_path,
        "--output",
        str(tmp_path / "repo"),
        "--formats",
        "openvino",
        "--quantize",
        "int8",
        "--num-images",
        "8",
        "--latency-runs",
        "0",
    )
    assert proc.returncode == 0, proc.stderr
    expected = [
        r"exporting 'resnet20v1' version 1 \(32x32, 10 classes, source dtype policy float32, "
        r"preprocessing: model\)",
        r"savedmodel: 4 signatures \+ warm-up requests \(\d+\.\d s\)",
        r"onnx: opset 17 \(\d+\.\d s\)",
        r"openvino: IR from ONNX \(\d+\.\d s\)",
        r"openvino: int8 \(NNCF\), 200 images \(\d+\.\d s\)",
        r"verifying 2 artifacts on 8 real images",
        r"published: version 1 \(\d+ s\)",
    ]
    lines = proc.stderr.splitlines()
    assert len(lines) == len(expected), proc.stderr
    for line, pattern in zip(lines, expected, strict=True):
        assert re.fullmatch(pattern, line), proc.stderr
    assert "openvino:int8" in proc.stdout and "openvino:float32" in proc.stdout
    # The ONNX file the IR was made from is not published: only what was asked for.
    artifacts = tmp_path / "repo" / "artifacts" / "resnet20v1" / "1"
    assert sorted(p.name for p in artifacts.iterdir()) == ["labels.txt", "openvino", "report.json"]
