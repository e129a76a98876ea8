"""An experiment's results beside the paper's: ``table.md``, ``table.json`` and ``figure.png``.

``collect`` reads what every run folder of a campaign holds (``metrics.json`` once finished, the
history so far otherwise); ``write`` turns those results into the table (errors in %, the paper's
number beside each row) and the figure, drawn as the paper draws its curves: the v1 paper's
training error dashed and test error bold against iterations, or the v2 paper's training loss
dashed (left axis) and test error solid (right axis). ``FINDINGS`` holds the checks a summary line
reports, e.g. the degradation problem of plain networks.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keras_preact.command_line import UserError
from training.experiments import papers as ex
from training.run import report
from training.run import run_folder as rundir

TABLE_MD = "table.md"
TABLE_JSON = "table.json"
FIGURE = "figure.png"
OUTPUTS = (TABLE_MD, TABLE_JSON, FIGURE)
"""The files ``write`` writes into an experiment's folder."""


def check_outputs(output: Path, experiment: ex.Experiment, *, overwrite: bool = False) -> None:
    """``UserError`` (one line, before anything trains) when ``write`` would replace a file of
    ``OUTPUTS`` in ``output`` that this experiment did not write: another experiment's table, or
    a file of the user's (as a run folder holding another run is never overwritten). Its own
    table (``table.json`` naming it, ``table.md`` headed by its name; ``figure.png`` beside
    either) is drawn again; ``overwrite`` replaces the others. A folder in the way is refused
    whatever ``overwrite`` says."""
    paths = [output / name for name in OUTPUTS]
    for path in paths:
        if path.exists() and not path.is_file():
            raise UserError(
                f"{path} is a folder, not a file of the table: move it away or choose another "
                "--output"
            )
    if overwrite:
        return
    own = {TABLE_JSON: _own_json(output / TABLE_JSON, experiment)}
    own[TABLE_MD] = _own_markdown(output / TABLE_MD, experiment)
    own[FIGURE] = own[TABLE_JSON] or own[TABLE_MD]
    for path in paths:
        if path.exists() and not own[path.name]:
            raise UserError(
                f"{path} was not written by training.reproduce {experiment.name}, and it is "
                "never overwritten: move it away, choose another --output, or pass --overwrite "
                "to replace it"
            )


def _own_json(path: Path, experiment: ex.Experiment) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("experiment") == experiment.name
    except (OSError, ValueError, AttributeError):
        return False


def _own_markdown(path: Path, experiment: ex.Experiment) -> bool:
    try:
        with path.open(encoding="utf-8") as f:
            return f.readline().startswith(f"# {experiment.name}: ")
    except (OSError, ValueError):
        return False


@dataclass
class Result:
    """What one run of an experiment has produced so far (``status``: ``finished``,
    ``unfinished``, ``not run`` or why it cannot run here)."""

    run: ex.Run
    status: str
    history: list[dict[str, float]] = field(default_factory=list)
    metrics: dict[str, Any] | None = None
    steps_per_epoch: int | None = None
    epochs_planned: int | None = None
    params: int | None = None

    @property
    def finished(self) -> bool:
        return self.metrics is not None

    def train_error(self) -> float | None:
        """Training error (%) of the last epoch trained (mean over its batches, as Keras reports)."""
        if self.metrics is not None and self.metrics.get("final_train_error") is not None:
            return 100 * self.metrics["final_train_error"]
        rows = [r for r in self.history if "accuracy" in r]
        return 100 * (1 - rows[-1]["accuracy"]) if rows else None

    def test_error(self) -> float | None:
        """Test error (%) after the last epoch trained."""
        if self.metrics is not None and self.metrics.get("final_test_error") is not None:
            return 100 * self.metrics["final_test_error"]
        rows = [r for r in self.history if "val_accuracy" in r]
        return 100 * (1 - rows[-1]["val_accuracy"]) if rows else None

    def best_test_error(self) -> float | None:
        """Lowest test error (%) of any epoch."""
        errors = [100 * (1 - r["val_accuracy"]) for r in self.history if "val_accuracy" in r]
        return min(errors) if errors else None

    def wall_seconds(self) -> float | None:
        """Wall time of the whole run (finished runs only)."""
        return self.metrics.get("wall_time_s") if self.metrics else None


# ---------------------------------------------------------------------------------------------
# Reading the run folders.


def collect(campaign, params: Callable[[ex.Run], int | None] | None = None) -> list[Result]:
    """The results of every run of ``campaign`` (a ``training.experiments.runs.Campaign``) in table order.

    ``params(run)`` counts a network's trainable parameters (default: ``count_params`` on the built
    network, reusing the counts of the previous ``table.json``); it is asked only for runs that
    have a folder.
    """
    from training.experiments import runs as campaign_lib

    cached = _cached_params(campaign.output / TABLE_JSON)
    results = []
    for planned in campaign.every:
        run, path = planned.run, planned.path
        status = rundir.status(path)
        if run.name in campaign.left_out:
            status = campaign.left_out[run.name]
        result = Result(run, "not run" if status == "new" else status)
        if status in ("finished", "unfinished"):
            result.history = report.read_history(path / rundir.HISTORY)
            if status == "finished":
                result.metrics = rundir.read_json(path / rundir.METRICS)
            schedule = campaign_lib.schedule(planned.resolved)
            result.steps_per_epoch, result.epochs_planned = (
                schedule.steps_per_epoch,
                schedule.epochs,
            )
            if result.metrics and result.metrics.get("epochs"):
                result.steps_per_epoch = result.metrics["iterations"] // result.metrics["epochs"]
            key = _params_key(run)
            result.params = cached[key] if key in cached else (params or count_params)(run)
        results.append(result)
    return results


def count_params(run: ex.Run) -> int:
    """Trainable parameters of ``run``'s network (BN moving statistics excluded, as the papers
    count them), from the built network."""
    import keras

    import keras_preact

    info = keras_preact.resolve_model(run.model, run.unit)
    options = {k: v for k, v in run.options.items() if k != "unit"}
    classes = 100 if run.dataset == "cifar100" else 10
    model = info.build(classes=classes, input_shape=(32, 32, 3), **options)
    count = keras_preact.model_stats(model).trainable_params
    del model
    keras.backend.clear_session()
    return count


def _params_key(run: ex.Run) -> str:
    return json.dumps([run.model, run.options, run.dataset], sort_keys=True)


def _cached_params(path: Path) -> dict[str, int]:
    """Parameter counts of the previous ``table.json`` (building ResNet-1202 takes a while)."""
    try:
        rows = json.loads(path.read_text())["rows"]
        return {
            json.dumps([r["model"], r["options"], r["dataset"]], sort_keys=True): r["params"]
            for r in rows
            if r.get("params") is not None and r.get("model")
        }
    except (OSError, ValueError, KeyError, TypeError):
        return {}


# ---------------------------------------------------------------------------------------------
# Findings the summary line checks.


@dataclass(frozen=True)
class Finding:
    """A paper's finding checked on the results: ``holds`` is ``None`` when nothing could be
    compared yet; ``text`` says what was compared; ``remark`` adds what the numbers show besides."""

    holds: bool | None
    text: str
    remark: str = ""

    @property
    def verdict(self) -> str:
        """``holds``, ``does NOT hold`` or ``not checked``."""
        return {True: "holds", False: "does NOT hold", None: "not checked"}[self.holds]

    def line(self) -> str:
        """The summary line."""
        return f"finding {self.verdict}: {self.text}" + (f" {self.remark}" if self.remark else "")


def _depth(run: ex.Run) -> int:
    match = re.search(r"(\d+)", run.model)
    return int(match.group(1)) if match else 0


def _pct(value: float) -> str:
    return f"{value:.1f} %"


def degradation_finding(results: Sequence[Result]) -> Finding:
    """The v1 paper's degradation problem: the deepest plain network ends with a higher training
    error than the shallowest one, and each ResNet ends below its plain twin (finished runs only).
    """
    done = {r.run.name: r for r in results if r.finished and r.train_error() is not None}
    plain = sorted(
        (r for r in done.values() if r.run.model.startswith("plain")), key=lambda r: _depth(r.run)
    )
    checks: list[tuple[bool, str]] = []
    if len(plain) >= 2:
        shallow, deep = plain[0], plain[-1]
        ok = deep.train_error() > shallow.train_error()
        sign = ">" if ok else "<="
        checks.append(
            (
                ok,
                f"{deep.run.label} ends with a {'higher' if ok else 'lower'} training "
                f"error than {shallow.run.label} ({_pct(deep.train_error())} {sign} "
                f"{_pct(shallow.train_error())})",
            )
        )
    twins = [(r, done[r.run.twin]) for r in done.values() if r.run.twin in done]
    for resnet, twin in sorted(twins, key=lambda pair: _depth(pair[0].run)):
        ok = resnet.train_error() < twin.train_error()
        sign = "<" if ok else ">="
        checks.append(
            (
                ok,
                f"{resnet.run.label} {'below' if ok else 'NOT below'} "
                f"{twin.run.label} ({_pct(resnet.train_error())} {sign} "
                f"{_pct(twin.train_error())})",
            )
        )
    if not checks:
        return Finding(None, "needs two finished plain networks or a ResNet with its plain twin")
    resnets = sorted((r for r in done.values() if r.run.twin), key=lambda r: _depth(r.run))
    remark = ""
    if len(resnets) >= 2:
        shallow, deep = resnets[0], resnets[-1]
        if deep.train_error() >= shallow.train_error():
            remark = (
                f"The deeper ResNet has not yet overtaken the shallower one ({deep.run.label} "
                f"{_pct(deep.train_error())} against {shallow.run.label} "
                f"{_pct(shallow.train_error())} training error): in the paper it does, over its "
                "full 64k iterations."
            )
        else:
            remark = (
                f"The deeper ResNet ends below the shallower one ({deep.run.label} "
                f"{_pct(deep.train_error())} against {shallow.run.label} "
                f"{_pct(shallow.train_error())} training error), as in the paper."
            )
    text = "training error at the end: " + "; ".join(text for _, text in checks) + "."
    return Finding(all(ok for ok, _ in checks), text, remark)


FINDINGS: dict[str, Callable[[Sequence[Result]], Finding]] = {"degradation": degradation_finding}
"""The checks ``Experiment.check`` names."""


def finding(experiment: ex.Experiment, results: Sequence[Result]) -> Finding | None:
    """The experiment's finding checked on ``results`` (``None`` if it has no check)."""
    return FINDINGS[experiment.check](results) if experiment.check else None


# ---------------------------------------------------------------------------------------------
# table.json and table.md.


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def rows(experiment: ex.Experiment, results: Sequence[Result]) -> list[dict[str, Any]]:
    """The rows of ``table.json``: one per run, then the paper's rows no option expresses."""
    out = []
    for r in results:
        out.append(
            {
                "run": r.run.name,
                "network": r.run.label,
                "model": r.run.model,
                "options": r.run.options,
                "dataset": r.run.dataset,
                "params": r.params,
                "paper_error": r.run.paper_error,
                "paper_note": r.run.paper_note,
                "test_error": _round(r.test_error()),
                "best_test_error": _round(r.best_test_error()),
                "train_error": _round(r.train_error()),
                "epochs": len(r.history) if r.history else None,
                "wall_s": _round(r.wall_seconds(), 1),
                "status": r.status,
            }
        )
    for u in experiment.unexpressible:
        out.append(
            {
                "run": None,
                "network": u.label,
                "model": None,
                "options": None,
                "dataset": u.dataset,
                "params": None,
                "paper_error": u.paper_error,
                "paper_note": u.paper_note,
                "test_error": None,
                "best_test_error": None,
                "train_error": None,
                "epochs": None,
                "wall_s": None,
                "status": f"not expressible: {u.reason}",
            }
        )
    return out


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _params_cell(value: int | None) -> str:
    return "—" if value is None else f"{value / 1e6:.2f}M"


def _wall(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _notes(row: dict[str, Any], epochs_planned: int | None) -> str:
    notes = []
    if row["paper_note"]:
        notes.append(f"paper: {row['paper_note']}")
    status = row["status"]
    if status == "unfinished":
        done = row["epochs"] or 0
        notes.append(f"unfinished: {done} of {epochs_planned or '?'} epochs")
    elif status != "finished":
        notes.append(status)
    return "; ".join(notes)


def markdown(
    experiment: ex.Experiment,
    setting: str,
    table: list[dict[str, Any]],
    planned: Sequence[int | None],
    found: Finding | None,
) -> str:
    """``table.md``: the table with the paper's numbers, the setting, the notes and the finding."""
    lines = [
        f"# {experiment.name}: {experiment.title}",
        "",
        f"Paper: {experiment.source}. {setting}",
        "",
        "| network | params | paper test error (%) | test error (%) | best test error (%) "
        "| training error (%) | epochs | wall time | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row, epochs_planned in zip(table, [*planned, *[None] * len(table)], strict=False):
        paper = _cell(row["paper_error"])
        if row["paper_error"] is None and row["paper_note"].startswith("fail"):
            paper, row = "fail", {**row, "paper_note": row["paper_note"].replace("fail ", "", 1)}
        lines.append(
            f"| {row['network']} | {_params_cell(row['params'])} | {paper} "
            f"| {_cell(row['test_error'])} | {_cell(row['best_test_error'])} "
            f"| {_cell(row['train_error'])} | {row['epochs'] or '—'} | {_wall(row['wall_s'])} "
            f"| {_notes(row, epochs_planned)} |"
        )
    curves = (
        "training error (dashed) and test error (bold) against iterations, as the v1 paper draws "
        "them"
        if experiment.curves == "error"
        else "training loss (dashed, left axis: Keras' loss, which includes the weight-decay "
        "penalty) and test error (solid, right axis) against iterations, as the v2 paper draws "
        "them"
    )
    lines += [
        "",
        "Errors in %: test error after the last epoch, the lowest test error of any epoch, and the "
        "training error of the last epoch (mean over its batches). Params: trainable parameters. "
        f"Figure: {curves}.",
    ]
    lines += [f"{note}" for note in ("", *experiment.notes)] if experiment.notes else []
    if found is not None:
        remark = f" {found.remark}" if found.remark else ""
        lines += [
            "",
            f"**The paper's finding {found.verdict}** (finished runs): {found.text}{remark}",
        ]
    lines += ["", f"![{experiment.name}]({FIGURE})", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# figure.png


def draw(experiment: ex.Experiment, results: Sequence[Result], title: str):
    """The figure (a ``matplotlib.figure.Figure``): the experiment's panels, from the histories."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    by_name = {r.run.name: r for r in results}
    panels = experiment.panels
    columns = min(3, len(panels))
    lines = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(4.6 * columns, 3.8 * lines + 0.5), dpi=110)
    for k, panel in enumerate(panels):
        axes = figure.add_subplot(lines, columns, k + 1)
        drawn = [by_name[n] for n in panel.runs if n in by_name and by_name[n].history]
        if experiment.curves == "error":
            _error_panel(axes, panel, drawn)
        else:
            _loss_panel(axes, panel, drawn)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def plot(experiment: ex.Experiment, results: Sequence[Result], path: Path, title: str) -> None:
    """Write the figure (PNG, atomically)."""
    buffer = io.BytesIO()
    draw(experiment, results, title).savefig(buffer, format="png")
    rundir.write_bytes(path, buffer.getvalue())


def _iterations(result: Result) -> tuple[list[float], float]:
    steps = result.steps_per_epoch or 1
    return [(row["epoch"] + 1) * steps for row in result.history], steps


def _x_unit(drawn: Sequence[Result]) -> tuple[float, float]:
    """``(unit, longest)``: iterations in units of 1e4 (as the papers) once a run is that long."""
    longest = max(
        ((r.history[-1]["epoch"] + 1) * (r.steps_per_epoch or 1) for r in drawn), default=0
    )
    return (1e4 if longest >= 1e4 else 1.0), float(longest)


def _x_axis(axes, unit: float, longest: float) -> None:
    """Label the iterations axis and fit it to the longest run (after the curves are drawn)."""
    axes.set_xlabel("iter. (1e4)" if unit > 1 else "iter.")
    axes.set_xlim(0, max(longest / unit, 1e-9) if longest else 1)


def _error_panel(axes, panel: ex.Panel, drawn: Sequence[Result]) -> None:
    """v1 paper, Fig. 6: training error dashed, test error bold, one colour per network."""
    unit, longest = _x_unit(drawn)
    highest = 20.0
    for result in drawn:
        x, _ = _iterations(result)
        x = [v / unit for v in x]
        color = f"C{panel.runs.index(result.run.name)}"
        train = [100 * (1 - r["accuracy"]) for r in result.history if "accuracy" in r]
        test = [100 * (1 - r["val_accuracy"]) for r in result.history if "val_accuracy" in r]
        axes.plot(x[: len(train)], train, "--", color=color, lw=1)
        axes.plot(x[: len(test)], test, "-", color=color, lw=2, label=result.run.label)
        highest = max([highest, *train, *test])
    # The paper's panels show 0-20 %; a short run's errors are higher.
    axes.set_ylim(0, 20 if highest <= 20 else min(100, highest * 1.05))
    _x_axis(axes, unit, longest)
    axes.set_ylabel("error (%)")
    axes.set_title(panel.title, fontsize=10)
    axes.grid(alpha=0.3)
    if drawn:
        axes.legend(loc="best", fontsize=8, title="dashed: training, bold: test", title_fontsize=7)
    else:
        axes.text(0.5, 0.5, "no runs yet", ha="center", va="center", transform=axes.transAxes)


def _loss_panel(axes, panel: ex.Panel, drawn: Sequence[Result]) -> None:
    """v2 paper, Fig. 1, 3 and 6: training loss dashed (left axis), test error solid (right)."""
    unit, longest = _x_unit(drawn)
    right = axes.twinx()
    highest = 20.0
    for result in drawn:
        x, _ = _iterations(result)
        x = [v / unit for v in x]
        color = f"C{panel.runs.index(result.run.name)}"
        loss = [r["loss"] for r in result.history if "loss" in r]
        test = [100 * (1 - r["val_accuracy"]) for r in result.history if "val_accuracy" in r]
        axes.plot(x[: len(loss)], loss, "--", color=color, lw=1)
        right.plot(x[: len(test)], test, "-", color=color, lw=1.6, label=result.run.label)
        highest = max([highest, *test])
    _x_axis(axes, unit, longest)
    axes.set_ylabel("training loss (dashed)")
    axes.set_ylim(bottom=0)
    right.set_ylim(0, 20 if highest <= 20 else min(100, highest * 1.05))
    right.set_ylabel("test error (%) (solid)")
    axes.set_title(panel.title, fontsize=10)
    axes.grid(alpha=0.3)
    if drawn:
        right.legend(loc="best", fontsize=7)
    else:
        axes.text(0.5, 0.5, "no runs yet", ha="center", va="center", transform=axes.transAxes)


# ---------------------------------------------------------------------------------------------
# Everything at once.


def write(
    experiment: ex.Experiment, results: Sequence[Result], output: Path, *, scale: str, setting: str
) -> Finding | None:
    """Write ``table.json``, ``table.md`` and ``figure.png`` into ``output`` (each atomically);
    return the experiment's finding (``None`` if it has no check)."""
    found = finding(experiment, results)
    table = rows(experiment, results)
    rundir.write_json(
        output / TABLE_JSON,
        {
            "experiment": experiment.name,
            "title": experiment.title,
            "source": experiment.source,
            "scale": scale,
            "setting": setting,
            "notes": list(experiment.notes),
            "finding": None
            if found is None
            else {"holds": found.holds, "text": found.text, "remark": found.remark},
            "rows": table,
        },
    )
    planned = [r.epochs_planned for r in results]
    rundir.write_bytes(
        output / TABLE_MD, markdown(experiment, setting, table, planned, found).encode()
    )
    plot(experiment, results, output / FIGURE, f"{experiment.source} — {scale} scale")
    return found
