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

from bench.plan import Job
from bench.tasks import Settings
from bench.variants import get_variant
from training.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


def partial_path(output: Path) -> Path:
    """Where records accumulate while the run is in progress."""
    return output.with_name(output.name + ".partial")


def worker_env(job: Job, settings: Settings) -> dict[str, str]:
    """Environment of a worker: the Keras backend, the repository importable, quieter TensorFlow,
    and what a profiling variant sets (only a one-task job can have one)."""
    env = dict(os.environ)
    env["KERAS_BACKEND"] = settings.backend if job.process in ("keras", "parity") else "tensorflow"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for task in job.tasks:
        if task.variant:
            env.update(dict(get_variant(task.variant).env))
    return env


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
            job_file, out_file = Path(tmp) / "job.json", Path(tmp) / "out.jsonl"
            job_file.write_text(
                json.dumps(
                    {
                        "settings": settings.to_dict(),
                        "tasks": [t.__dict__ for t in job.tasks],
                    }
                )
            )
            proc = subprocess.run(
                [sys.executable, "-m", "bench.worker", str(job_file), str(out_file)],
                env=worker_env(job, settings),
                cwd=ROOT,
                check=False,
            )
            if out_file.is_file():
                with partial.open("a", encoding="utf-8") as f:
                    f.write(out_file.read_text(encoding="utf-8"))
        log(f"[bench] job {i}/{len(jobs)} done in {time.perf_counter() - start:.0f} s")
        if proc.returncode != 0:
            raise UserError(
                f"{job.describe()} failed (exit {proc.returncode}, its error is above); "
                f"what was measured before is in {partial}"
            )
    partial.replace(output)
