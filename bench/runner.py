"""Run a plan: each job in a fresh worker process, records collected into one JSON-lines file.

The output appears only when the whole run succeeded (``OUT.partial`` is renamed), so an interrupted
run never replaces earlier results; the partial file keeps what was measured until the failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.plan import TURNS, Job
from bench.step_profile import PROFILE_ENV
from bench.tasks import Settings, Task
from bench.turns import TurnError, run_turns
from bench.variants import get_variant
from keras_preact.command_line import UserError

ROOT = Path(__file__).resolve().parent.parent


def partial_path(output: Path) -> Path:
    """Where records accumulate while the run is in progress."""
    return output.with_name(output.name + ".partial")


def worker_env(job: Job, settings: Settings) -> dict[str, str]:
    """Environment of a worker: the Keras backend, the repository importable, quieter TensorFlow,
    torch.compile's cache folder, and what a profiling variant or the profile stage sets (only
    one-task jobs have those)."""
    env = dict(os.environ)
    env["KERAS_BACKEND"] = settings.backend if job.process in ("keras", "parity") else "tensorflow"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # torch.compile's caches in the run's work directory: its first compile in a run is cold, as
    # a user's first one is, and later ones of the same graph (another turn group) are warm.
    env["TORCHINDUCTOR_CACHE_DIR"] = str(Path(settings.workdir).resolve() / "torchinductor")
    for task in job.tasks:
        if task.variant:
            env.update(dict(get_variant(task.variant).env))
        if task.stage == "profile":
            env.update(dict(PROFILE_ENV))
    return env


def _job_file(path: Path, settings: Settings, tasks: list[Task]) -> Path:
    path.write_text(
        json.dumps({"settings": settings.to_dict(), "tasks": [t.__dict__ for t in tasks]})
    )
    return path


def _worker(*args: Path | str) -> list[str]:
    return [sys.executable, "-m", "bench.worker", *map(str, args)]


def _run_process(job: Job, settings: Settings, tmp: Path) -> tuple[list[Path], str | None]:
    """One worker process does the job's tasks in order; returns its output and any failure."""
    job_file, out_file = _job_file(tmp / "job.json", settings, job.tasks), tmp / "out.jsonl"
    proc = subprocess.run(
        _worker(job_file, out_file), env=worker_env(job, settings), cwd=ROOT, check=False
    )
    failure = None if proc.returncode == 0 else f"exit {proc.returncode}, its error is above"
    return [out_file], failure


def _run_turns(
    job: Job, settings: Settings, tmp: Path, log: Callable[[str], None], number: int
) -> tuple[list[Path], str | None]:
    """A turn group: one warm worker per task, timed window by window in turn (bench.turns)."""
    # Unique within the run (a model may have several groups) and across runs.
    first = job.tasks[0]
    name = first.model.replace(" ", "-") if first.stage == "train" else first.stage
    group = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-job{number}"
    outs, contenders = [], []
    for i, task in enumerate(job.tasks):
        job_file = _job_file(tmp / f"job{i}.json", settings, [task])
        outs.append(tmp / f"out{i}.jsonl")
        name = task.impl + (f"[{task.variant}]" if task.variant else "")
        argv = _worker("--turn-group", group, job_file, outs[-1])
        contenders.append((name, argv, worker_env(Job(task.process, [task]), settings)))
    try:
        run_turns(contenders, settings.windows(job.tasks[0].stage), ROOT, log)
    except TurnError as e:
        return outs, str(e)
    return outs, None


def run_jobs(
    jobs: list[Job], settings: Settings, output: Path, log: Callable[[str], None] = print
) -> None:
    """Run every job in order; on success rename the partial file to ``output``."""
    partial = partial_path(output)
    partial.unlink(missing_ok=True)
    partial.touch()
    for i, job in enumerate(jobs, 1):
        log(f"[bench] job {i}/{len(jobs)} ({job.process}): {job.describe()}")
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="bench-job-") as tmp:
            if job.process == TURNS:
                outs, failure = _run_turns(job, settings, Path(tmp), log, i)
            else:
                outs, failure = _run_process(job, settings, Path(tmp))
            with partial.open("a", encoding="utf-8") as f:
                for out in outs:
                    if out.is_file():
                        f.write(out.read_text(encoding="utf-8"))
        log(f"[bench] job {i}/{len(jobs)} done in {time.perf_counter() - start:.0f} s")
        if failure:
            raise UserError(
                f"{job.describe()} failed ({failure}); what was measured before is in {partial}"
            )
    partial.replace(output)
