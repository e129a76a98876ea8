"""Prove every artifact against the Keras model: same real images in, probabilities compared.

Per artifact: max absolute difference of probabilities against Keras, top-1 agreement, accuracy
on the images' labels, file size and CPU latency at batch 1 and 32.

Pass criteria (stated here, printed with the table, written to ``report.json``):

* float artifacts (SavedModel signatures, TFLite float32, ONNX, OpenVINO in float32) must give
  Keras' probabilities to within ``FLOAT_TOLERANCE`` (absolute, per probability);
* the OpenVINO IR in bfloat16 and the quantised TFLite, ONNX and OpenVINO files may lose at most
  ``ACCURACY_MARGINS[mode]`` percentage points of accuracy against Keras on the same images.
  When the model does not classify CIFAR-10 (the embedded sample's labels), accuracy is
  meaningless and the same margin bounds top-1 *disagreement* with Keras instead.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

FLOAT_TOLERANCE = 1e-5
# Percentage points of accuracy a quantised file may lose against the float Keras model.
ACCURACY_MARGINS: dict[str, float] = {
    "float16": 1.0,
    "bfloat16": 1.0,
    "dynamic": 2.0,
    "int8": 3.0,
}
LATENCY_BATCHES = (1, 32)
EVAL_BATCH = 32

Runner = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass
class Artifact:
    """One thing to verify: a name for the table, how to judge it, its file(s) and a runner.

    Attributes:
        name: row name, e.g. ``savedmodel:serving_bytes`` or ``tflite:int8``.
        check: ``"float"`` or a quantisation mode (a key of ``ACCURACY_MARGINS``).
        path: file or directory (its size is reported).
        runner: uint8 ``(N, H, W, 3)`` images -> ``(N, classes)`` float probabilities.
        precision: what the runtime says it computes in, where it chooses (OpenVINO), else None.
    """

    name: str
    check: str
    path: Path
    runner: Runner
    precision: str | None = None


@dataclasses.dataclass
class Row:
    """Verification result of one artifact (or of the Keras reference)."""

    name: str
    check: str
    path: str | None
    size_bytes: int | None
    max_abs_diff: float | None
    top1_agreement: float | None
    accuracy: float | None
    latency_ms: dict[str, float]
    criterion: str
    passed: bool
    failure: str | None = None
    precision: str | None = None


@dataclasses.dataclass
class Report:
    """All rows, plus what was compared; ``passed`` only when every artifact passed."""

    rows: list[Row]
    num_images: int
    accuracy_meaningful: bool
    float_tolerance: float
    accuracy_margins: dict[str, float]
    metadata: dict

    @property
    def passed(self) -> bool:
        """True when every artifact met its criterion."""
        return all(row.passed for row in self.rows)

    @property
    def failures(self) -> list[str]:
        """One line per failed artifact."""
        return [f"{row.name}: {row.failure}" for row in self.rows if not row.passed]

    def to_dict(self) -> dict:
        """JSON-serialisable form (what ``report.json`` holds)."""
        return {
            **self.metadata,
            "num_images": self.num_images,
            "accuracy_meaningful": self.accuracy_meaningful,
            "float_tolerance": self.float_tolerance,
            "accuracy_margins_points": self.accuracy_margins,
            "passed": self.passed,
            "failures": self.failures,
            "artifacts": [_finite(dataclasses.asdict(row)) for row in self.rows],
        }


def _finite(value):
    # NaN/inf (a broken artifact) become null: JSON has no NaN, strict parsers reject it.
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def size_of(path: Path) -> int:
    """Bytes of a file (an OpenVINO ``.xml`` with its ``.bin``), or of all files under a
    directory."""
    path = Path(path)
    weights = path.with_suffix(".bin")
    if path.suffix == ".xml" and weights.is_file():
        return path.stat().st_size + weights.stat().st_size
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def predict_all(runner: Runner, images: np.ndarray, batch: int = EVAL_BATCH) -> np.ndarray:
    """Run ``images`` through ``runner`` in batches and stack the probabilities."""
    out = [np.asarray(runner(images[i : i + batch])) for i in range(0, len(images), batch)]
    return np.concatenate(out).astype(np.float64)


def latency_ms(runner: Runner, images: np.ndarray, batch: int, runs: int) -> float:
    """Median wall time in milliseconds of one ``runner`` call on ``batch`` images (1 warm-up)."""
    reps = -(-batch // len(images))
    x = np.concatenate([images] * reps)[:batch]
    runner(x)
    times = []
    for _ in range(max(runs, 1)):
        start = time.perf_counter()
        runner(x)
        times.append((time.perf_counter() - start) * 1000.0)
    return round(statistics.median(times), 3)


def verify(
    reference: Runner,
    artifacts: Sequence[Artifact],
    images: np.ndarray,
    labels: np.ndarray | None,
    *,
    latency_runs: int = 10,
    float_tolerance: float = FLOAT_TOLERANCE,
    accuracy_margins: dict[str, float] | None = None,
    metadata: dict | None = None,
) -> Report:
    """Compare every artifact with the Keras ``reference`` on ``images``.

    Args:
        reference: the Keras model as a runner (uint8 images -> probabilities).
        artifacts: what to verify.
        images: uint8 ``(N, H, W, 3)`` real images.
        labels: their true class ids, or ``None`` when they do not belong to the model's classes
            (then accuracy is not reported and quantised files are judged by top-1 agreement).
        latency_runs: timed calls per batch size (median reported); 0 skips timing.
        float_tolerance: max absolute probability difference allowed for float artifacts.
        accuracy_margins: allowed accuracy loss in percentage points per quantisation mode.
        metadata: extra fields for ``report.json``.
    """
    margins = dict(ACCURACY_MARGINS if accuracy_margins is None else accuracy_margins)
    images = np.asarray(images, np.uint8)
    ref = predict_all(reference, images)
    ref_top1 = ref.argmax(axis=1)
    ref_acc = None if labels is None else float(np.mean(ref_top1 == labels))

    def timings(runner: Runner) -> dict[str, float]:
        if latency_runs <= 0:
            return {}
        return {f"batch_{b}": latency_ms(runner, images, b, latency_runs) for b in LATENCY_BATCHES}

    rows = [
        Row(
            "keras",
            "reference",
            None,
            None,
            0.0,
            1.0,
            ref_acc,
            timings(reference),
            "reference",
            True,
        )
    ]
    for artifact in artifacts:
        probs = predict_all(artifact.runner, images)
        diff = float(np.max(np.abs(probs - ref)))
        top1 = probs.argmax(axis=1)
        agreement = float(np.mean(top1 == ref_top1))
        accuracy = None if labels is None else float(np.mean(top1 == labels))
        if artifact.check == "float":
            criterion = f"max|dp| <= {float_tolerance:g}"
            passed = diff <= float_tolerance
            failure = None if passed else f"max |dp| {diff:.3g} > {float_tolerance:g}"
        else:
            margin = margins[artifact.check]
            if labels is not None:
                loss = 100.0 * (ref_acc - accuracy)
                criterion = f"acc loss <= {margin:g} pt"
                what = "accuracy"
            else:
                loss = 100.0 * (1.0 - agreement)
                criterion = f"top-1 disagreement <= {margin:g} pt"
                what = "top-1 agreement"
            passed = loss <= margin
            failure = None if passed else f"lost {loss:.2f} points of {what} (margin {margin:g})"
        rows.append(
            Row(
                artifact.name,
                artifact.check,
                str(artifact.path),
                size_of(artifact.path),
                diff,
                agreement,
                accuracy,
                timings(artifact.runner),
                criterion,
                passed,
                failure,
                artifact.precision,
            )
        )
    return Report(
        rows, len(images), labels is not None, float_tolerance, margins, dict(metadata or {})
    )


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(report: Report) -> str:
    """The report as a fixed-width text table, one row per artifact, with a verdict line."""
    header = (
        "artifact",
        "max|dp|",
        "top1 agree",
        "accuracy",
        "size MB",
        "ms @1",
        "ms @32",
        "criterion",
        "result",
    )
    lines = []
    for row in report.rows:
        lines.append(
            (
                row.name,
                _fmt(row.max_abs_diff, ".2e"),
                _fmt(None if row.top1_agreement is None else 100 * row.top1_agreement, ".1f")
                + ("%" if row.top1_agreement is not None else ""),
                _fmt(None if row.accuracy is None else 100 * row.accuracy, ".1f")
                + ("%" if row.accuracy is not None else ""),
                _fmt(None if row.size_bytes is None else row.size_bytes / 1e6, ".2f"),
                _fmt(row.latency_ms.get("batch_1"), ".2f"),
                _fmt(row.latency_ms.get("batch_32"), ".2f"),
                row.criterion,
                "ok" if row.passed else "FAIL",
            )
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    out.append(f"{report.num_images} real images; {verdict(report)}")
    return "\n".join(out)


def verdict(report: Report) -> str:
    """What each criterion checked and how it went, in one line: float artifacts by their
    probabilities' difference from Keras', quantised ones by accuracy loss (or top-1 agreement,
    when accuracy is not meaningful)."""
    rows = [row for row in report.rows if row.check != "reference"]
    floats = [row for row in rows if row.check == "float"]
    quantised = [row for row in rows if row.check != "float"]
    parts = []
    if floats:
        worst = max((row.max_abs_diff for row in floats), default=0.0)
        parts.append(
            f"{len(floats)} float artifact{'s' * (len(floats) > 1)} checked for Keras' "
            f"probabilities to within {report.float_tolerance:g} (largest difference {worst:.2g})"
        )
    if quantised:
        keras_accuracy = report.rows[0].accuracy
        if report.accuracy_meaningful and keras_accuracy is not None:
            each = ", ".join(
                f"{row.name} {100 * (keras_accuracy - row.accuracy):.1f} pt "
                f"(top-1 agreement {100 * row.top1_agreement:.1f} %)"
                for row in quantised
            )
            parts.append(f"quantised files judged by accuracy lost against Keras: {each}")
        else:
            each = ", ".join(f"{row.name} {100 * row.top1_agreement:.1f} %" for row in quantised)
            parts.append(
                f"quantised files judged by top-1 agreement with Keras (the images' labels are "
                f"not this model's classes): {each}"
            )
    checked = "; ".join(parts)
    if report.passed:
        return f"every artifact met its criterion: {checked}"
    return f"FAILED: {'; '.join(report.failures)} (checked: {checked})"


def write_report(report: Report, path: str | Path) -> Path:
    """Write ``report.json``."""
    path = Path(path)
    path.write_text(json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n", "utf-8")
    return path
