"""An experiment's results beside the paper's: ``table.md``, ``table.json`` and ``figure.png``.

``collect`` reads every run folder of a campaign, finished or not; ``write`` writes the table
(errors in %), the figure (``training.run.report.draw``) and checks the paper's finding
(``FINDINGS``, e.g. the degradation problem of plain networks).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keras_preact.command_line import UserError
from training.experiments import papers as ex
from training.experiments import runs
from training.experiments.runs import Campaign
from training.run import network, report
from training.run import run_folder as rundir

TABLE_MD = "table.md"
TABLE_JSON = "table.json"
FIGURE = "figure.png"
OUTPUTS = (TABLE_MD, TABLE_JSON, FIGURE)
"""The files ``write`` writes into an experiment's folder."""


def check_outputs(output: Path, experiment: ex.Experiment, *, overwrite: bool = False) -> None:
    """``UserError`` (one line, before anything trains) when ``write`` would replace a file of
    ``OUTPUTS`` that this experiment did not write (its ``table.json`` names it, its ``table.md``
    is headed by its name, ``figure.png`` goes with either), unless ``overwrite``; and for a
    folder in the way, whatever ``overwrite`` says."""
    paths = [output / name for name in OUTPUTS]
    for path in paths:
        if path.exists() and not path.is_file():
            raise UserError(
                f"{path} is a folder, not a file of the table: move it away or choose another "
                "--output"
            )
    if overwrite:
        return
    head = f"# {experiment.name}: "
    own_json = _read(output / TABLE_JSON, lambda f: json.load(f)["experiment"] == experiment.name)
    own_md = _read(output / TABLE_MD, lambda f: f.readline().startswith(head))
    own = {TABLE_JSON: own_json, TABLE_MD: own_md, FIGURE: own_json or own_md}
    for path in paths:
        if path.exists() and not own[path.name]:
            raise UserError(
                f"{path} was not written by training.reproduce {experiment.name}, and it is "
                "never overwritten: move it away, choose another --output, or pass --overwrite "
                "to replace it"
            )


def _read(path: Path, parse: Callable[[Any], Any], default: Any = False) -> Any:
    """``parse`` of the open file ``path``, or ``default`` when it cannot be read or parsed."""
    failed = (OSError, ValueError, LookupError, TypeError)
    with contextlib.suppress(*failed), path.open(encoding="utf-8") as f:
        return parse(f)
    return default


@dataclass
class Result:
    """What one run of an experiment has produced so far (``status``: ``finished``,
    ``unfinished``, ``not run`` or why it cannot run here); errors in %."""

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

    def _last_error(self, final: str, key: str) -> float | None:
        if self.metrics is not None and self.metrics.get(final) is not None:
            return 100 * self.metrics[final]
        found = report.errors(self.history, key)
        return found[-1] if found else None

    def train_error(self) -> float | None:
        """Of the last epoch trained (mean over its batches, as Keras reports)."""
        return self._last_error("final_train_error", "accuracy")

    def test_error(self) -> float | None:
        """After the last epoch trained."""
        return self._last_error("final_test_error", "val_accuracy")

    def best_test_error(self) -> float | None:
        """The lowest of any epoch."""
        return min(report.errors(self.history), default=None)


def collect(campaign: Campaign) -> list[Result]:
    """The results of every run of ``campaign`` in table order (parameter counts reused from the
    previous ``table.json``: building ResNet-1202 takes a while)."""

    def counted(f) -> dict[str, int]:
        return {_key(r): r["params"] for r in json.load(f)["rows"]}

    cached = _read(campaign.output / TABLE_JSON, counted, {})
    results = []
    for planned in campaign.every:
        run, path = planned.run, Path(planned.config.output)
        status = campaign.left_out.get(run.name, rundir.status(path))
        result = Result(run, "not run" if status == "new" else status)
        results.append(result)
        if status not in ("finished", "unfinished"):
            continue
        result.history = report.read_history(path / rundir.HISTORY)
        schedule = runs.schedule(planned.resolved)
        result.steps_per_epoch, result.epochs_planned = schedule.steps_per_epoch, schedule.epochs
        if status == "finished":
            result.metrics = rundir.read_json(path / rundir.METRICS)
            if result.metrics.get("epochs"):
                result.steps_per_epoch = result.metrics["iterations"] // result.metrics["epochs"]
        model, options = planned.resolved.model, planned.resolved.model_options
        result.params = cached.get(_key(dataclasses.asdict(run))) or network.count_params(
            model, options, classes=100 if run.dataset == "cifar100" else 10
        )
    return results


def _key(row: dict[str, Any]) -> str:
    """A network's key in the cache of parameter counts (a row of ``table.json`` or a ``Run``)."""
    return json.dumps([row["model"], row["options"], row["dataset"]], sort_keys=True)


@dataclass(frozen=True)
class Finding:
    """A paper's finding checked on the results: ``holds`` is ``None`` when nothing could be
    compared yet; ``text`` says what was compared; ``remark`` adds what the numbers show besides."""

    holds: bool | None
    text: str
    remark: str = ""

    @property
    def verdict(self) -> str:
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

    def by_depth(found) -> list[Result]:
        return sorted(found, key=lambda r: _depth(r.run))

    def compared(a: Result, said: str, b: Result, sign: str) -> str:
        numbers = f"{_pct(a.train_error())} {sign} {_pct(b.train_error())}"
        return f"{a.run.label} {said} {b.run.label} ({numbers})"

    checks: list[tuple[bool, str]] = []
    plain = by_depth(r for r in done.values() if r.run.model.startswith("plain"))
    if len(plain) >= 2:
        shallow, deep = plain[0], plain[-1]
        ok = deep.train_error() > shallow.train_error()
        said = f"ends with a {'higher' if ok else 'lower'} training error than"
        checks.append((ok, compared(deep, said, shallow, ">" if ok else "<=")))
    for resnet in by_depth(r for r in done.values() if r.run.twin in done):
        twin = done[resnet.run.twin]
        ok = resnet.train_error() < twin.train_error()
        said = "below" if ok else "NOT below"
        checks.append((ok, compared(resnet, said, twin, "<" if ok else ">=")))
    if not checks:
        return Finding(None, "needs two finished plain networks or a ResNet with its plain twin")
    resnets = by_depth(r for r in done.values() if r.run.twin)
    remark = ""
    if len(resnets) >= 2:
        shallow, deep = resnets[0], resnets[-1]
        shown = (
            f"({deep.run.label} {_pct(deep.train_error())} against {shallow.run.label} "
            f"{_pct(shallow.train_error())} training error)"
        )
        remark = (
            f"The deeper ResNet ends below the shallower one {shown}, as in the paper."
            if deep.train_error() < shallow.train_error()
            else f"The deeper ResNet has not yet overtaken the shallower one {shown}: in the "
            "paper it does, over its full 64k iterations."
        )
    text = "training error at the end: " + "; ".join(text for _, text in checks) + "."
    return Finding(all(ok for ok, _ in checks), text, remark)


FINDINGS: dict[str, Callable[[Sequence[Result]], Finding]] = {"degradation": degradation_finding}
"""The checks ``Experiment.check`` names."""


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


_COLUMNS = ("run", "model", "options", "params", "test_error", "best_test_error", "train_error")
_COLUMNS += ("epochs", "wall_s")


def rows(experiment: ex.Experiment, results: Sequence[Result]) -> list[dict[str, Any]]:
    """The rows of ``table.json``: one per run, then the paper's rows no option expresses."""
    out = [
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
            "wall_s": _round((r.metrics or {}).get("wall_time_s"), 1),
            "status": r.status,
        }
        for r in results
    ]
    return out + [
        {
            **dict.fromkeys(_COLUMNS),
            "network": u.label,
            "dataset": u.dataset,
            "paper_error": u.paper_error,
            "paper_note": u.paper_note,
            "status": f"not expressible: {u.reason}",
        }
        for u in experiment.unexpressible
    ]


def _cell(value: float | None, unit: float = 1, suffix: str = "") -> str:
    return "—" if value is None else f"{value / unit:.2f}{suffix}"


def _wall(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _notes(row: dict[str, Any], epochs_planned: int | None) -> str:
    notes = [f"paper: {row['paper_note']}"] if row["paper_note"] else []
    if row["status"] == "unfinished":
        notes.append(f"unfinished: {row['epochs'] or 0} of {epochs_planned or '?'} epochs")
    elif row["status"] != "finished":
        notes.append(row["status"])
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
            f"| {row['network']} | {_cell(row['params'], 1e6, 'M')} | {paper} "
            f"| {_cell(row['test_error'])} | {_cell(row['best_test_error'])} "
            f"| {_cell(row['train_error'])} | {row['epochs'] or '—'} | {_wall(row['wall_s'])} "
            f"| {_notes(row, epochs_planned)} |"
        )
    curves = {
        "error": "training error (dashed) and test error (bold) against iterations, as the v1 "
        "paper draws them",
        "loss": "training loss (dashed, left axis: Keras' loss, which includes the weight-decay "
        "penalty) and test error (solid, right axis) against iterations, as the v2 paper draws "
        "them",
    }[experiment.curves]
    lines += [
        "",
        "Errors in %: test error after the last epoch, the lowest test error of any epoch, and the "
        "training error of the last epoch (mean over its batches). Params: trainable parameters. "
        f"Figure: {curves}.",
        *(["", *experiment.notes] if experiment.notes else []),
    ]
    if found is not None:
        said = " ".join(filter(None, (found.text, found.remark)))
        lines += ["", f"**The paper's finding {found.verdict}** (finished runs): {said}"]
    lines += ["", f"![{experiment.name}]({FIGURE})", ""]
    return "\n".join(lines)


def draw(experiment: ex.Experiment, results: Sequence[Result], title: str):
    """The figure: the experiment's panels, one colour per run, drawn by ``report.draw``."""
    by_name = {r.run.name: r for r in results}

    def curves(panel: ex.Panel) -> list[report.Curves]:
        drawn = [(k, by_name[name]) for k, name in enumerate(panel.runs) if name in by_name]
        return [
            report.Curves(r.run.label, r.history, r.steps_per_epoch or 1, f"C{k}") for k, r in drawn
        ]

    panels = [(panel.title, curves(panel)) for panel in experiment.panels]
    return report.draw(panels, loss=experiment.curves == "loss", title=title)


def write(
    experiment: ex.Experiment, results: Sequence[Result], output: Path, *, scale: str, setting: str
) -> Finding | None:
    """Write ``table.json``, ``table.md`` and ``figure.png`` into ``output`` (each atomically);
    return the experiment's finding (``None`` if it has no check)."""
    found = FINDINGS[experiment.check](results) if experiment.check else None
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
            "finding": found and dataclasses.asdict(found),
            "rows": table,
        },
    )
    md = markdown(experiment, setting, table, [r.epochs_planned for r in results], found)
    rundir.write_bytes(output / TABLE_MD, md.encode())
    report.save(draw(experiment, results, f"{experiment.source} — {scale} scale"), output / FIGURE)
    return found
