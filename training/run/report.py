"""What a run leaves for comparison with the papers: the error curves and ``metrics.json``.

The curves follow the papers' CIFAR figures (He et al. 2015, Fig. 6; 2016, Fig. 6): error in % against
iterations (1e4), training error dashed, test error bold, one colour per run.
"""

from __future__ import annotations

import csv
import io
import platform
import sys
from pathlib import Path
from typing import Any

import keras

from keras_preact.command_line import UserError
from training.run.run_folder import write_bytes


def read_history(path: Path) -> list[dict[str, float]]:
    """The rows of a ``CSVLogger`` history (numbers as floats, ``epoch`` as int); ``[]`` if none."""
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            parsed: dict[str, float] = {}
            for key, value in row.items():
                try:
                    parsed[key] = float(value)
                except (TypeError, ValueError):
                    continue
            if "epoch" in parsed:
                parsed["epoch"] = int(parsed["epoch"])
                rows.append(parsed)
    return rows


def trim_history(path: Path, epochs_done: int) -> None:
    """Drop the rows of epochs a resumed run will train again (written after its last backup)."""
    if not path.is_file():
        return
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    if not lines:
        return
    try:
        kept = [lines[0]] + [
            line
            for line, row in zip(lines[1:], csv.reader(lines[1:]), strict=True)
            if row and int(row[0]) < epochs_done
        ]
    except (ValueError, csv.Error) as e:
        raise UserError(f"cannot read {path} ({e}): is it the history this run wrote?") from None
    if len(kept) != len(lines):
        write_bytes(path, "".join(kept).encode())


def plot_curves(rows: list[dict[str, float]], steps_per_epoch: int, path: Path, title: str) -> None:
    """Write the training/test error curves (PNG, atomically) for the history ``rows``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=120)
    axes = figure.add_subplot()
    # The papers plot iterations in units of 1e4; short runs are easier to read in plain iterations.
    unit = 1e4 if rows and (rows[-1]["epoch"] + 1) * steps_per_epoch >= 1e4 else 1
    iterations = [(r["epoch"] + 1) * steps_per_epoch / unit for r in rows]
    train = [100 * (1 - r["accuracy"]) for r in rows if "accuracy" in r]
    test = [100 * (1 - r["val_accuracy"]) for r in rows if "val_accuracy" in r]
    if train:
        axes.plot(iterations[: len(train)], train, "--", color="C0", lw=1, label="training error")
    if test:
        axes.plot(iterations[: len(test)], test, "-", color="C0", lw=2, label="test error")
        best = min(test)
        axes.axhline(best, color="0.6", lw=0.6, ls=":")
        axes.annotate(f"best {best:.2f}%", (0, best), textcoords="offset points", xytext=(4, 3))
    axes.set_xlabel("iter. (1e4)" if unit > 1 else "iter.")
    axes.set_xlim(left=0)
    axes.set_ylabel("error (%)")
    axes.set_title(title)
    axes.set_ylim(0, max([*train, *test, 20]) * 1.05)
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    write_bytes(path, buffer.getvalue())


class PlotCurves(keras.callbacks.Callback):
    """Redraw the error curves after every epoch from the history so far (earlier sessions included)."""

    def __init__(self, rows: list[dict[str, float]], steps_per_epoch: int, path: Path, title: str):
        super().__init__()
        self.rows = list(rows)
        self.steps_per_epoch = steps_per_epoch
        self.path = Path(path)
        self.title = title

    def on_epoch_end(self, epoch, logs=None):
        row = {k: float(v) for k, v in (logs or {}).items()}
        self.rows = [r for r in self.rows if r["epoch"] < epoch] + [{**row, "epoch": epoch}]
        plot_curves(self.rows, self.steps_per_epoch, self.path, self.title)


def versions() -> dict[str, str]:
    """Versions of what produced the numbers."""
    import numpy

    import keras_preact

    found = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "keras": keras.__version__,
        "keras_preact": keras_preact.__version__,
        "numpy": numpy.__version__,
        "backend": keras.backend.backend(),
    }
    for module in ("tensorflow", "jax"):
        if module in sys.modules:
            found[module] = getattr(sys.modules[module], "__version__", "?")
    return found


def summarize(
    rows: list[dict[str, float]],
    *,
    steps_per_epoch: int,
    global_batch: int,
    wall_seconds: float,
    config: dict[str, Any],
    paper_error: float | None = None,
) -> dict[str, Any]:
    """The content of ``metrics.json`` for a finished run with history ``rows``."""
    tested = [r for r in rows if "val_accuracy" in r]
    best = min(tested, key=lambda r: (1 - r["val_accuracy"], r["epoch"])) if tested else None
    seconds = sum(r.get("train_seconds", 0.0) for r in rows)
    images = sum(r.get("train_seconds", 0.0) * r.get("images_per_second", 0.0) for r in rows)
    last = rows[-1] if rows else {}
    return {
        "final_test_error": 1 - last["val_accuracy"] if "val_accuracy" in last else None,
        "final_test_loss": last.get("val_loss"),
        "final_train_error": 1 - last["accuracy"] if "accuracy" in last else None,
        "best_test_error": 1 - best["val_accuracy"] if best else None,
        "best_epoch": best["epoch"] + 1 if best else None,
        "paper_test_error": paper_error / 100 if paper_error is not None else None,
        "epochs": len(rows),
        "iterations": len(rows) * steps_per_epoch,
        "global_batch": global_batch,
        "wall_time_s": wall_seconds,
        "train_time_s": seconds,
        "images_per_second": images / seconds if seconds else None,
        "versions": versions(),
        "config": config,
    }
