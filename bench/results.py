"""Benchmark results as JSON lines: one measurement per line, appended as it is taken.

Required keys: ``impl``, ``model``, ``metric``, ``value``, ``batch``, ``device``, ``backend``,
``versions``; optional ``stage``, ``seed``, ``n``, ``variant`` (a profiling variant, e.g. ``synthetic-data``),
``foreign_load`` (CPU cores other processes used while it ran) and ``extra`` (per-repeat samples, ...).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from keras_preact.command_line import UserError

IMPLS = (
    "keras-preact",
    "plain-keras",
    "pytorch",
    "pytorch-compile",
    "pytorch-onnx",
    "pytorch-onnx-int8",
    "pytorch-openvino-float32",
    "pytorch-openvino-bfloat16",
    "pytorch-openvino-int8",
    "savedmodel",
    "tflite-float32",
    "tflite-float16",
    "tflite-dynamic",
    "tflite-int8",
    "onnx",
    "onnx-int8",
    "openvino-float32",
    "openvino-bfloat16",
    "openvino-int8",
)
METRICS = (
    "train_img_s",
    "feed_img_s",
    "lat1_ms",
    "img_s_b32",
    "acc",
    "peak_mem_mb",
    "train_time_s",
    "params",
    "compile_s",
)
REQUIRED = ("impl", "model", "metric", "value", "batch", "device", "backend", "versions")
VERSIONED = (
    "keras",
    "tensorflow",
    "jax",
    "torch",
    "torchvision",
    "pillow",
    "onnxruntime",
    "openvino",
    "nncf",
    "tf2onnx",
    "ai-edge-litert",
    "numpy",
)


@dataclasses.dataclass
class Record:
    """One measurement."""

    impl: str
    model: str
    metric: str
    value: float
    batch: int | None
    device: str
    backend: str
    versions: dict[str, str]
    stage: str | None = None
    seed: int | None = None
    n: int | None = None
    variant: str | None = None
    foreign_load: float | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        """One line of JSON; optional fields left out when empty (required ones always written)."""
        d = {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if k in REQUIRED or (v is not None and v != {})
        }
        return json.dumps(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        """Parse one line's object; ValueError if a required key is missing or a key is unknown."""
        missing = [k for k in REQUIRED if k not in d]
        if missing:
            raise ValueError(f"missing keys {missing}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown keys {unknown}")
        return cls(**d)


def versions() -> dict[str, str]:
    """Installed versions of the libraries a measurement can depend on (missing ones left out)."""
    out = {"python": platform.python_version()}
    for dist in VERSIONED:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


# The /proc/cpuinfo flags that decide which kernels oneDNN, XNNPACK and onnxruntime pick, as named in
# the device string: the same core count runs int8 ~2x faster with VNNI, and bfloat16 needs BF16.
ISA_FLAGS = (
    ("avx512f", "AVX-512"),
    ("avx2", "AVX2"),
    ("avx512_vnni", "VNNI"),
    ("avx_vnni", "VNNI"),
    ("avx512_bf16", "BF16"),
    ("amx_tile", "AMX"),
)


def cpu_device(cpuinfo: str | None = None) -> str:
    """The CPU as a short string: model name, family and model numbers, the cores this process may
    use and its vector ISA.

    ``cpuinfo`` is the text of ``/proc/cpuinfo`` (read when None). The numbers are there because
    cloud VMs often report a bare model name: three different CPUs in bench/results/ all call
    themselves "AMD EPYC".
    """
    model = platform.processor() or platform.machine()
    generation: dict[str, str] = {}
    flags: set[str] = set()
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() in ("cpu family", "model"):
            generation[key.strip()] = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
            break  # every core reports the same; the first one is enough
    isa = list(dict.fromkeys(name for flag, name in ISA_FLAGS if flag in flags))
    if "AVX-512" in isa:
        isa = [name for name in isa if name != "AVX2"]  # implied
    if len(generation) == 2:
        model += f" (family {generation['cpu family']}, model {generation['model']})"
    device = f"cpu: {model}, {len(os.sched_getaffinity(0))} cores"
    return f"{device}, {' '.join(isa)}" if isa else device


def write_records(path: Path, records: Iterable[Record]) -> None:
    """Append records to a JSON-lines file, flushed line by line so a crash loses nothing written."""
    with path.open("a", encoding="utf-8") as f:
        for r in records:
            f.write(r.to_json() + "\n")
            f.flush()


def read_records(path: Path) -> Iterator[Record]:
    """Records of one JSON-lines file; ``UserError`` names the file and line of a bad one."""
    try:
        f = path.open(encoding="utf-8")
    except OSError as e:
        raise UserError(f"{path}: cannot read it ({e.strerror or e})") from None
    with f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield Record.from_dict(json.loads(line))
            except (ValueError, TypeError) as e:
                raise UserError(f"{path}:{lineno}: not a benchmark record: {e}") from None
