"""``python -m bench.worker [--turn-group G] JOB.json OUT.jsonl``: run a job's tasks in this process.

Started by `bench.runner`, one process per job, so that every framework measures with its own
thread pools and memory and no other framework loaded. Records are appended to ``OUT.jsonl`` as
each task finishes. With ``--turn-group`` the job is one training or feed task of a turn group: its
windows wait for the parent's turns on stdin and report on stdout (`bench.turns.TurnGate`).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

from bench.results import write_records
from bench.tasks import TURN_STAGES, Settings, Task, run_task
from bench.train_speed import FREE
from bench.turns import TurnGate
from keras_preact.command_line import UserError, cli_main


def run_job(job_file: Path, out_file: Path, turn_group: str | None = None) -> None:
    """Do every task of the job file, appending its records to ``out_file``."""
    job = json.loads(job_file.read_text())
    settings = Settings.from_dict(job["settings"])
    tasks = [Task(**t) for t in job["tasks"]]
    gate = FREE
    if turn_group:
        if len(tasks) != 1 or tasks[0].stage not in TURN_STAGES:
            raise UserError("a turn-group worker does exactly one training or feed task")
        gate = TurnGate.from_stdio(turn_group, windows=settings.windows(tasks[0].stage))
    if any(t.impl in ("keras-preact", "keras") for t in tasks):
        # As in `python -m training.cifar`: the pipeline's package is imported before Keras and
        # TensorFlow, so any process-wide setup it does applies to what is measured.
        import training  # noqa: F401
    deep: contextlib.AbstractContextManager = contextlib.nullcontext()
    if any(t.process in ("keras", "parity") for t in tasks):
        # Keras walks a graph recursively, one frame per layer: ResNet-1001 is deeper than Python's
        # default limit, for the plain Keras model as much as for keras-preact (whose pipeline
        # raises it the same way), so every Keras task runs with the raised limit.
        import keras_preact

        deep = keras_preact.deep_graph_recursion()
    with deep:
        for task in tasks:
            print(f"[bench] {task.describe()}: running", flush=True)
            start = time.perf_counter()
            records = run_task(task, settings, gate)
            seconds = time.perf_counter() - start
            write_records(out_file, records)
            summary = ", ".join(f"{r.impl} {r.metric}={r.value:g}" for r in records[:6])
            print(f"[bench] {task.describe()} ({seconds:.0f} s): {summary}", flush=True)


@cli_main
def main(argv: list[str] | None = None) -> None:
    """Entry point: the job file and the output file, after an optional ``--turn-group G``."""
    args = sys.argv[1:] if argv is None else argv
    turn_group = None
    if args[:1] == ["--turn-group"] and len(args) > 1:
        turn_group, args = args[1], args[2:]
    if len(args) != 2:
        raise UserError("usage: python -m bench.worker [--turn-group G] JOB.json OUT.jsonl")
    run_job(Path(args[0]), Path(args[1]), turn_group)


if __name__ == "__main__":
    main()
