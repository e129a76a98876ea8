"""Helpers of the training tests: run the CLI in a fresh process, pick free ports, read a run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

SAMPLE_RUN = [
    "--dataset",
    "cifar10-sample",
    "--model",
    "resnet8v1",
    "--recipe",
    "demo",
    "--batch-size",
    "50",
    "--verbose",
    "line",
]
"""The smallest real run: ResNet-8 on the embedded sample, 20 steps per epoch."""


def env(**extra: str) -> dict[str, str]:
    """The environment of a child process: quiet TensorFlow, this checkout first on the path."""
    base = {
        k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "KERAS_BACKEND", "XLA_FLAGS")
    }
    base.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    base.update(extra)
    return base


def cli(
    module: str, *args: str, timeout: float = 600, **env_extra: str
) -> subprocess.CompletedProcess:
    """Run ``python -m <module> <args>`` in a fresh process (from the repository root)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env(**env_extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def popen(module: str, *args: str, **env_extra: str) -> subprocess.Popen:
    """Start ``python -m <module> <args>`` in a fresh process; stdout and stderr together."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env(**env_extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def error_line(result: subprocess.CompletedProcess) -> str:
    """Check that a failed command printed exactly one ``error:`` line and no traceback; return it."""
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    return errors[0]


def main_error_line(main: Callable[[list[str]], Any], argv: list[str], capsys) -> str:
    """Run a command's ``main`` in this process; check that it exits with status 2 and printed
    exactly one ``error:`` line; return that line."""
    with pytest.raises(SystemExit) as exit_status:
        main(argv)
    assert exit_status.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    return errors[0]


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on right now (127.0.0.1)."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def metrics(run: Path) -> dict[str, Any]:
    """The ``metrics.json`` of a finished run."""
    return json.loads((run / "metrics.json").read_text())


def diverged_states_are_finite(out: Path) -> None:
    """Check that a run stopped for divergence left resume states, all with finite weights."""
    import h5py
    import numpy as np

    def floats(path: Path) -> list[np.ndarray]:
        found: list[np.ndarray] = []
        with h5py.File(path) as f:
            f.visititems(lambda _, o: found.append(o[()]) if isinstance(o, h5py.Dataset) else None)
        return [a for a in found if a.dtype.kind == "f"]

    states = sorted(out.rglob("step-*.weights.h5"))
    assert states, "the run diverged before its first backup"
    for path in states:
        arrays = floats(path)
        assert arrays and all(np.isfinite(a).all() for a in arrays), path
