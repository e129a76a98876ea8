"""What a run leaves for comparison with the papers: the error curves and ``metrics.json``.

``draw`` is the one plotter of training curves, as the papers' CIFAR figures draw them (He et al.
2015, Fig. 6; 2016, Fig. 1, 3, 6): a run's ``curves.png`` and an experiment's ``figure.png``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy

import keras_preact
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
                with contextlib.suppress(TypeError, ValueError):
                    parsed[key] = float(value)
            if "epoch" in parsed:
                rows.append({**parsed, "epoch": int(parsed["epoch"])})
    return rows


def errors(rows: Sequence[dict[str, float]], key: str = "val_accuracy") -> list[float]:
    """The error (%) of every row that has the accuracy ``key`` (default: the test accuracy)."""
    return [100 * (1 - r[key]) for r in rows if key in r]


def trim_history(path: Path, epochs_done: int) -> None:
    """Drop the rows of epochs a resumed run will train again (written after its last backup)."""
    lines = path.read_text().splitlines(keepends=True) if path.is_file() else []
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


@dataclass(frozen=True)
class Curves:
    """One run's history in a panel: ``rows`` as ``read_history`` returns them."""

    label: str
    rows: Sequence[dict[str, float]]
    steps_per_epoch: int
    color: str = "C0"


def draw(panels: Sequence[tuple[str, Sequence[Curves]]], *, loss: bool = False, title: str = ""):
    """A ``matplotlib.figure.Figure`` with one panel per ``(title, curves)``, up to three a row,
    against iterations (in units of 1e4 once a run is that long). Without ``loss``, as the v1
    paper (Fig. 6): training error dashed, test error bold. With ``loss``, as the v2 paper
    (Fig. 1, 3, 6): training loss dashed on the left axis, test error solid on the right one."""
    import matplotlib  # optional dependency: only drawing needs it

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    columns = min(3, len(panels))
    lines = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(4.6 * columns, 3.8 * lines + 0.5), dpi=110)
    for k, (name, curves) in enumerate(panels):
        _panel(figure.add_subplot(lines, columns, k + 1), name, curves, loss)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def _panel(axes, title: str, curves: Sequence[Curves], loss: bool) -> None:
    curves = [c for c in curves if c.rows]
    longest = max(((c.rows[-1]["epoch"] + 1) * c.steps_per_epoch for c in curves), default=0)
    unit = 1e4 if longest >= 1e4 else 1.0
    test_ax = axes.twinx() if loss else axes  # the right axis in the v2 layout
    highest = 20.0
    for c in curves:
        x = [(r["epoch"] + 1) * c.steps_per_epoch / unit for r in c.rows]
        train = [r["loss"] for r in c.rows if "loss" in r] if loss else errors(c.rows, "accuracy")
        test = errors(c.rows)
        axes.plot(x[: len(train)], train, "--", color=c.color, lw=1)
        test_ax.plot(x[: len(test)], test, "-", color=c.color, lw=1.6 if loss else 2, label=c.label)
        highest = max([highest, *test, *([] if loss else train)])
    # The papers' panels show 0-20 %; a short run's errors are higher.
    test_ax.set_ylim(0, 20 if highest <= 20 else min(100, highest * 1.05))
    axes.set_xlabel("iter. (1e4)" if unit > 1 else "iter.")
    axes.set_xlim(0, longest / unit if longest else 1)
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    if loss:
        axes.set_ylabel("training loss (dashed)")
        axes.set_ylim(bottom=0)
        test_ax.set_ylabel("test error (%) (solid)")
    else:
        axes.set_ylabel("error (%)")
    if not curves:
        axes.text(0.5, 0.5, "no runs yet", ha="center", va="center", transform=axes.transAxes)
    elif loss:
        test_ax.legend(loc="best", fontsize=7)
    else:
        axes.legend(loc="best", fontsize=8, title="dashed: training, bold: test", title_fontsize=7)


def save(figure, path: Path) -> None:
    """Write ``figure`` as a PNG, atomically."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    write_bytes(path, buffer.getvalue())


def plot_curves(rows: list[dict[str, float]], steps_per_epoch: int, path: Path, title: str) -> None:
    """Write one run's ``curves.png``: its training and test error, the lowest test error named."""
    tested = errors(rows)
    label = f"test error (best {min(tested):.2f} %)" if tested else "test error"
    save(draw([(title, [Curves(label, rows, steps_per_epoch)])]), path)


class PlotCurves(keras.callbacks.Callback):
    """Redraw the error curves after every epoch from the history so far (earlier sessions included)."""

    def __init__(self, rows: list[dict[str, float]], steps_per_epoch: int, path: Path, title: str):
        super().__init__()
        self.rows, self.plot_args = list(rows), (steps_per_epoch, Path(path), title)

    def on_epoch_end(self, epoch, logs=None):
        row = {k: float(v) for k, v in (logs or {}).items()}
        self.rows = [r for r in self.rows if r["epoch"] < epoch] + [{**row, "epoch": epoch}]
        plot_curves(self.rows, *self.plot_args)


def versions() -> dict[str, str]:
    """Versions of what produced the numbers."""
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
