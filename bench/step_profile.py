"""Where a keras-preact training step's time goes, from oneDNN's own timing of every primitive.

On the CPU TensorFlow runs the convolutions and batch norms (and their gradients) as oneDNN
primitives. With ``ONEDNN_VERBOSE=profile_exec`` oneDNN prints one line per primitive execution
with its kind, direction, shape and wall time in milliseconds. With one inter-op thread
(``TF_NUM_INTEROP_THREADS=1``) TensorFlow runs one op at a time, so the primitive times of a window
add up to a part of its wall time and the rest is everything outside oneDNN: element-wise ops
(ReLU, additions and their gradients), the optimizer, Keras' step and waiting for input. With the
default two inter-op threads independent ops overlap and the same sum exceeds the wall time.

The measured step is the one `bench.train_speed.keras_preact_training` sets up, with one inter-op
thread (the ``interop-1`` variant's setting, a few percent slower than the default). From each
convolution's shape its floating-point operations are counted (2 per multiply-add), so every
convolution direction also gets its achieved GFLOP/s: the convolutions' speed is what bounds a step.

The worker's environment carries `PROFILE_ENV` (see `bench.runner.worker_env`): oneDNN reads it once,
when its first primitive is created. The lines are taken from the worker's standard output, which
is sent to a temporary file while the model trains; markers written between windows delimit the
timed windows.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from bench.train_speed import SpeedSettings, fit_windows, keras_preact_training, keras_timer
from bench.turns import Gate
from keras_preact.command_line import UserError

PROFILE_ENV = (("ONEDNN_VERBOSE", "profile_exec"), ("TF_NUM_INTEROP_THREADS", "1"))
BEGIN = "bench-profile-window-begin"
END = "bench-profile-window-end"
OUTSIDE = "outside oneDNN"
WHOLE = "whole step"  # the wall time per step, the parts' total
OTHER = "other oneDNN primitives"
SMALL = 0.005  # of the step: smaller kinds of primitive are summed as OTHER
# oneDNN's (primitive kind, propagation kind) -> the part of the step it is.
PARTS = {
    ("convolution", "forward_training"): "convolution forward",
    ("convolution", "backward_data"): "convolution input gradient",
    ("convolution", "backward_weights"): "convolution filter gradient",
    ("batch_normalization", "forward_training"): "batch norm forward",
    ("batch_normalization", "backward"): "batch norm backward",
    ("batch_normalization", "backward_data"): "batch norm backward",
}
_FIELD = re.compile(r"([a-z]+)(\d+)")


@dataclasses.dataclass
class Part:
    """Time and work of one part of the step over the profiled windows."""

    ms: float = 0.0
    calls: int = 0
    flop: float = 0.0  # convolutions only


def conv_flop(desc: str) -> float:
    """Floating-point operations of one convolution from oneDNN's problem descriptor
    (``mb128_ic16oc16_ih32oh32kh3sh1dh0ph1_iw32ow32kw3sw1dw0pw1``): 2 per multiply-add, the same
    for the forward pass and for either gradient. ValueError if the descriptor is not one."""
    dims = {k: int(v) for k, v in _FIELD.findall(desc)}
    if not {"mb", "ic", "oc", "oh", "kh"} <= dims.keys():
        raise ValueError(f"not a convolution descriptor: {desc!r}")
    # oneDNN leaves out the width when it equals the height, and the depth of 2-D problems.
    ow, kw = dims.get("ow", dims["oh"]), dims.get("kw", dims["kh"])
    od, kd = dims.get("od", 1), dims.get("kd", 1)
    spatial = od * dims["oh"] * ow * kd * dims["kh"] * kw
    macs = dims["mb"] * dims["oc"] * (dims["ic"] // dims.get("g", 1)) * spatial
    return 2.0 * macs


def parse_verbose(lines: Iterable[str]) -> tuple[dict[str, Part], int]:
    """Sum the primitive executions between each `BEGIN` and `END` marker by part.

    Returns the parts and the number of windows seen. Kinds without a name in `PARTS` are summed
    under ``oneDNN <kind>`` (reorders between layouts, the classifier's inner product, ...).
    """
    parts: dict[str, Part] = {}
    windows, inside = 0, False
    for line in lines:
        line = line.strip()
        if line == BEGIN:
            inside = True
        elif line == END:
            inside, windows = False, windows + 1 if inside else windows
        elif inside and line.startswith("onednn_verbose,"):
            fields = line.split(",")
            if "exec" not in fields or "graph" in fields[:4]:
                continue
            i = fields.index("exec")
            kind, prop = fields[i + 2], fields[i + 4]
            name = PARTS.get((kind, prop), f"oneDNN {kind}")
            part = parts.setdefault(name, Part())
            part.ms += float(fields[-1])
            part.calls += 1
            if kind == "convolution":
                part.flop += conv_flop(fields[-2])
    return parts, windows


@dataclasses.dataclass
class StepProfile:
    """Milliseconds per step of every part, the wall time per step, and what was measured."""

    wall_ms: float
    parts: dict[str, Part]
    steps: int  # profiled steps (all windows)
    details: dict[str, Any]

    def rows(self) -> Iterator[tuple[str, float, float, float | None]]:
        """(part, ms per step, calls per step, GFLOP/s or None), slowest first; kinds of primitive
        under `SMALL` of the step summed as `OTHER`; last what was outside oneDNN (the wall time
        less every primitive)."""
        parts = dict(self.parts)
        small = [k for k, p in parts.items() if p.ms / self.steps < SMALL * self.wall_ms]
        if len(small) > 1:
            other = Part()
            for name in small:
                p = parts.pop(name)
                other.ms, other.calls, other.flop = other.ms + p.ms, other.calls + p.calls, 0.0
            parts[OTHER] = other
        inside = 0.0
        for name, p in sorted(parts.items(), key=lambda kv: (kv[0] == OTHER, -kv[1].ms)):
            inside += p.ms
            gflop_s = p.flop / p.ms / 1e6 if p.flop and p.ms else None
            yield name, p.ms / self.steps, p.calls / self.steps, gflop_s
        yield OUTSIDE, self.wall_ms - inside / self.steps, 0.0, None


@contextmanager
def _stdout_to(path: str) -> Iterator[None]:
    """Send this process's file descriptor 1 (oneDNN's printf and Python's print) to ``path``."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(path, "wb") as f:
            os.dup2(f.fileno(), 1)
        yield
    finally:
        _flush_c_stdout()
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _flush_c_stdout() -> None:
    """Flush C's stdio buffers, so oneDNN's lines land before a marker written after them."""
    # Without a C library to ask (not Linux or macOS) oneDNN's own flush after each line remains.
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


def _marker(text: str) -> None:
    _flush_c_stdout()
    os.write(1, f"\n{text}\n".encode())


class _MarkerGate(Gate):
    """Writes `BEGIN` and `END` around every window after the warm-up."""

    def __init__(self) -> None:
        self.windows = 0

    def before(self) -> None:
        if self.windows:
            _marker(BEGIN)

    def after(self, seconds: float) -> None:
        if self.windows:
            _marker(END)
        self.windows += 1


def _check_environment() -> None:
    missing = [f"{k}={v}" for k, v in PROFILE_ENV if os.environ.get(k) != v]
    if missing:
        raise UserError(
            f"the profile stage needs {' '.join(missing)} set before TensorFlow starts; "
            "run it through `python -m bench run --stages profile`"
        )


def profile_step(model: str, s: SpeedSettings) -> StepProfile:
    """Train ``model`` as `bench.train_speed.keras_preact_speed` does, with oneDNN's verbose
    timing on, and split the step time of the ``repeats`` windows after the warm-up into parts."""
    import keras

    _check_environment()
    if keras.backend.backend() != "tensorflow":
        raise UserError(
            f"the profile stage reads TensorFlow's oneDNN kernels; the Keras backend is "
            f"{keras.backend.backend()!r}"
        )
    prepared, data, callbacks = keras_preact_training(model, s)
    timer = keras_timer(_MarkerGate())
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        log = os.path.join(tmp, "onednn.log")
        with _stdout_to(log):
            fit_windows(prepared.model, data, s, [*callbacks, timer], timer)
        with open(log, encoding="utf-8", errors="replace") as f:
            parts, windows = parse_verbose(f)
    if windows != s.repeats or not any(p.flop for p in parts.values()):
        raise UserError(
            f"expected oneDNN's timings of {s.repeats} windows with convolutions, found {windows} "
            f"windows and {', '.join(parts) or 'no primitives'}: is TensorFlow running its "
            "convolutions on oneDNN (TF_ENABLE_ONEDNN_OPTS=1)?"
        )
    steps = s.steps * s.repeats
    return StepProfile(
        wall_ms=1000 * sum(timer.seconds) / steps,
        parts=parts,
        steps=steps,
        details={"inter_op_threads": 1, "source": "ONEDNN_VERBOSE=profile_exec"},
    )
