"""The output directory of a run: new, resumed, finished, or replaced under ``--overwrite``.

A directory is a *run* when it holds ``config.json`` (written first) and a *finished run* when it also
holds ``metrics.json`` (written last). Re-running the same command on an unfinished run resumes it; a
different command is refused, and so is any command on a finished run unless ``--overwrite`` is given.

``--overwrite`` never destroys anything before the new run has succeeded: the new run trains in a
hidden sibling ``.<name>.overwrite`` (itself resumable by re-running the same command), and only when it
has finished is it swapped in (``<name>`` -> ``.<name>.old``, staging -> ``<name>``, delete the old one).
A swap interrupted between its renames is completed by the next run on that directory.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keras_preact.command_line import UserError

CONFIG = "config.json"
METRICS = "metrics.json"
BACKUP = "backup"
BEST = "best.keras"
LAST = "last.keras"
HISTORY = "history.csv"
CURVES = "curves.png"
TENSORBOARD = "tensorboard"
LABELS = "labels.txt"


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: a reader (or a killed writer) never sees a half-written file."""
    write_bytes(path, (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode())


def write_bytes(path: Path, blob: bytes) -> None:
    """Write a file atomically (a temporary file in the same folder, then ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}.{secrets.token_hex(4)}")
    # os.open applies the umask to 0o666, unlike mkstemp's private 0o600.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    """Read a JSON file written by ``write_json``; ``UserError`` naming it if it is unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path}: {e}") from None


def status(path: Path) -> str:
    """``new`` (missing or empty), ``unfinished``, ``finished`` or ``foreign`` (not a run)."""
    if not path.exists():
        return "new"
    if not path.is_dir():
        return "foreign"
    if (path / METRICS).is_file():
        return "finished"
    if (path / CONFIG).is_file():
        return "unfinished"
    return "new" if not any(path.iterdir()) else "foreign"


@dataclass
class RunDir:
    """Where one session writes: ``path`` is ``final`` itself, or its staging sibling under
    ``--overwrite`` (``staged``). ``resuming`` says that ``path`` already holds this run's state."""

    final: Path
    path: Path
    resuming: bool
    staged: bool
    config: dict[str, Any]
    claimed: bool = False

    def claim(self) -> None:
        """Take the directory (once every check has passed): write ``config.json`` for a new run,
        clear what a killed session left half-written for a resumed one."""
        if self.claimed:
            return
        if self.resuming:
            for leftover in self.path.glob(".tmp-*"):
                leftover.unlink(missing_ok=True)
        else:
            if status(self.path) != "new":
                # Only ever our own scratch: an abandoned replacement or worker state.
                shutil.rmtree(self.path)
            self.path.mkdir(parents=True, exist_ok=True)
            write_json(self.path / CONFIG, self.config)
        self.claimed = True

    def file(self, name: str) -> Path:
        """A file of the run, e.g. ``run.file(BEST)``."""
        return self.path / name

    @property
    def backup_dir(self) -> Path:
        """The resume state."""
        return self.path / BACKUP

    def discard(self) -> None:
        """Delete this directory (a non-chief worker's scratch state, once training has finished)."""
        shutil.rmtree(self.path, ignore_errors=True)

    def finish(self) -> None:
        """After ``metrics.json`` is written: drop the resume state, then swap a staged run in."""
        shutil.rmtree(self.backup_dir, ignore_errors=True)
        if self.staged:
            old = _sibling(self.final, "old")
            if self.final.exists():
                os.replace(self.final, old)
            os.replace(self.path, self.final)
            shutil.rmtree(old, ignore_errors=True)
            self.path = self.final
            self.staged = False


def _sibling(final: Path, what: str) -> Path:
    """``.<name>.<what>`` beside ``final``: staging (``overwrite``), ``old`` or a worker's."""
    return final.parent / f".{final.name}.{what}"


def _complete_interrupted_swap(final: Path) -> None:
    """Finish a swap that a kill interrupted between its renames (see the module docstring)."""
    old, staging = _sibling(final, "old"), _sibling(final, "overwrite")
    if not old.exists():
        return
    if not final.exists():
        if status(staging) == "finished":
            os.replace(staging, final)
        else:  # cannot happen through ``finish``; put the old run back rather than lose it
            os.replace(old, final)
            return
    shutil.rmtree(old, ignore_errors=True)


def check_writable(path: Path) -> None:
    """Prove that ``path`` can be created and written, without leaving anything behind."""
    existing = path
    while not existing.exists():
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"cannot write to --output {path}: {e.strerror or e}") from None


def differences(saved: dict[str, Any], wanted: dict[str, Any]) -> str:
    """``""`` when ``saved`` (a ``config.json``) is the run ``wanted`` describes (a ``None`` seed:
    any seed), else the first settings that differ, as ``key: saved -> wanted``. The one test of
    "same run" for run folders, experiments and searches."""
    wanted = json.loads(json.dumps(wanted, default=str))  # as it reads back: tuples as lists
    if wanted.get("seed") is None:
        saved = {k: v for k, v in saved.items() if k != "seed"}
        wanted.pop("seed", None)
    keys = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
    shown = ", ".join(f"{k}: {saved.get(k)!r} -> {wanted.get(k)!r}" for k in keys[:4])
    return shown + (", ..." if len(keys) > 4 else "")


def _refuse_other(record: Path, wanted: dict[str, Any], holds: str, advice: str) -> None:
    """``UserError`` ``"{holds} with other settings (...){advice}"`` unless the settings that
    ``record`` holds are ``wanted``."""
    changed = differences(read_json(record), wanted)
    if changed:
        raise UserError(f"{holds} with other settings ({changed}){advice}")


def reused_state(name: str, path: Path, config: dict[str, Any]) -> str:
    """``new``, ``unfinished`` or ``finished`` for the folder of an experiment's run ``name`` that
    is free or holds this very run; ``UserError`` for anything else (it is never overwritten)."""
    state = status(path)
    if state == "foreign":
        raise UserError(
            f"run {name}: {path} is not empty and holds no training run: move it away or choose "
            "another --output"
        )
    if state != "new":
        never = "; it is never overwritten: move it away or choose another --output"
        _refuse_other(path / CONFIG, config, f"run {name}: {path} holds a run", never)
    return state


def open_search(path: Path, settings: dict[str, Any], record: str = "search.json") -> None:
    """Take ``path`` for a resumable search whose ``settings`` ``record`` holds: the same settings
    resume it, an empty folder starts it; ``UserError`` for anything else. Writes ``record``."""
    check_writable(path)
    if (path / record).is_file():
        advice = ": re-run its command to resume it, or choose another --output"
        _refuse_other(path / record, settings, f"--output {path} holds a search", advice)
    elif path.exists() and any(path.iterdir()):
        raise UserError(f"--output {path} is not empty and holds no search: choose another")
    write_json(path / record, settings)


def command_line(program: Sequence[str], options: Mapping[str, Any]) -> list[str]:
    """``program`` followed by ``options`` (``{"--seed": 1, "--no-table": True}``) as arguments:
    ``True`` is a flag, ``None`` and ``False`` leave the option out. The one writer of a run's
    settings back into the command that trains it."""
    args = list(program)
    for option, value in options.items():
        if value is True:
            args.append(option)
        elif value is not None and value is not False:
            args += [option, str(value)]
    return args


def _decide(path: Path, config: dict[str, Any], final: Path, staged: bool) -> RunDir:
    """Resume ``path`` when it holds this run, else plan a new run there (``RunDir.claim`` writes)."""
    saved = read_json(path / CONFIG) if status(path) in ("unfinished", "finished") else None
    if saved is not None and not differences(saved, config):
        return RunDir(final, path, resuming=True, staged=staged, config={**config, **saved})
    if config.get("seed") is None:
        # Random but recorded, so that re-running the command resumes with the same data order.
        config = {**config, "seed": secrets.randbits(31)}
    return RunDir(final, path, resuming=False, staged=staged, config=config)


def open_run(output: str | os.PathLike, config: dict[str, Any], *, overwrite: bool) -> RunDir:
    """Decide where this session writes, or refuse with one line (see the module docstring).

    Nothing is written until ``RunDir.claim()`` (the pipeline claims once data, devices and model
    are ready), so a run that fails its checks leaves no trace. ``config`` identifies the run; when
    its ``seed`` is ``None`` the seed saved by an earlier session is reused (``RunDir.config``).
    """
    final = Path(output).expanduser().absolute()
    _complete_interrupted_swap(final)
    check_writable(final)
    state = status(final)
    if state == "foreign":
        raise UserError(
            f"--output {final} is not empty and holds no training run (no {CONFIG}): choose a new "
            "or empty directory"
        )
    if overwrite and state in ("unfinished", "finished"):
        return _decide(_sibling(final, "overwrite"), config, final, staged=True)
    if state == "finished":
        error = read_json(final / METRICS).get("final_test_error")
        shown = f" (final test error {100 * error:.2f} %)" if isinstance(error, float) else ""
        raise UserError(
            f"--output {final} already holds a finished run{shown}: pass --overwrite to replace it "
            "once the new run has finished, or choose another --output"
        )
    if state == "unfinished":
        advice = (
            ": re-run its command to resume it, pass --overwrite to replace it, or choose "
            "another --output"
        )
        _refuse_other(final / CONFIG, config, f"--output {final} holds an unfinished run", advice)
    return _decide(final, config, final, staged=False)


def open_worker_dir(output: str | os.PathLike, config: dict[str, Any], worker_index: int) -> RunDir:
    """Where a non-chief ``multi_worker`` process keeps its own resume state (nothing else)."""
    final = Path(output).expanduser().absolute()
    # A sibling, not inside the chief's directory (which must stay empty until the chief claims it).
    path = _sibling(final, f"worker-{worker_index}")
    check_writable(path)
    return _decide(path, config, final, staged=False)
