"""Turn-taking: implementations trained in separate warm processes, timed window by window in turn.

A 2-core cloud VM drifts by 10-20 % over minutes, more than the differences the training table
reports, so implementations timed one after the other (minutes apart) compare badly. Here every
contender of one model (keras-preact, plain Keras, PyTorch and the profiling variants; or the two
image feeds of the feed stage) is its own worker process, with its own framework, thread pools and
environment, and all of them are started and prepared up front. The parent then hands out turns: in round ``r`` each contender in a rotated
order runs one window of ``steps`` training steps while the others wait, blocked on their pipe,
idle. Round 0 is every contender's warm-up. Window ``i`` of two contenders was measured within
seconds of each other, so the ratio of one model's contenders is the median of per-round ratios
(`paired_ratio`), which machine drift affects far less than the ratio of two medians.

Protocol, one line each on the worker's stdin/stdout (its own logs go to stderr):
worker ``ready`` (prepared, about to start window 0) · parent ``go`` · worker ``{"seconds": s}``
after the window · ... · after its last window a worker waits until the parent closes its stdin
(after the last round), so that no worker's teardown runs during another's window; then it writes
its records. Any other line or an early exit ends the group with an error naming the contender.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

from bench.timing import ForeignLoad

READY, GO = "ready", "go"


class Gate:
    """Brackets every timed window; this one lets windows run back to back (standalone runs)."""

    def before(self) -> None:
        """Called just before a window's clock starts."""

    def after(self, seconds: float) -> None:
        """Called just after a window's clock stops, with its wall seconds."""

    def details(self) -> dict[str, Any]:
        """What the records of the measurement should say about how it was paired."""
        return {}

    def foreign_cores(self) -> float | None:
        """Cores other processes used during the windows (None: measure over the whole task)."""
        return None


class TurnGate(Gate):
    """Worker side: each window waits for the parent's ``go`` and reports its seconds.

    Other processes' CPU use is measured per window only: between windows the other contenders run
    theirs, which is the point, not a disturbance.
    """

    def __init__(self, turn_group: str, windows: int, inp: IO[str], out: IO[str]) -> None:
        self.turn_group = turn_group
        self.windows = windows
        self._inp, self._out = inp, out
        self._ready = False
        self._load: ForeignLoad | None = None
        self._loads: list[float] = []
        self.spans: list[tuple[float, float]] = []

    def _send(self, line: str) -> None:
        self._out.write(line + "\n")
        self._out.flush()

    def before(self) -> None:
        if not self._ready:
            self._send(READY)
            self._ready = True
        line = self._inp.readline().strip()
        if line != GO:
            raise RuntimeError(f"turn-taking: expected {GO!r} from the parent, got {line!r}")
        self._load = ForeignLoad().__enter__()
        self._start = time.monotonic()

    def after(self, seconds: float) -> None:
        self.spans.append((self._start, time.monotonic()))
        if self._load is not None:
            self._load.__exit__(None, None, None)
            if self._load.cores is not None:
                self._loads.append(self._load.cores)
        self._send(json.dumps({"seconds": seconds}))
        if len(self.spans) == self.windows:
            rest = self._inp.read()  # blocks until the parent has run every round
            if rest.strip():
                raise RuntimeError(
                    f"turn-taking: unexpected {rest.strip()!r} after the last window"
                )

    def details(self) -> dict[str, Any]:
        # spans: system-wide monotonic clock, so windows of different workers can be compared.
        return {"turn_group": self.turn_group, "window_spans": [list(s) for s in self.spans[1:]]}

    def foreign_cores(self) -> float | None:
        timed = self._loads[1:]  # window 0 is the warm-up
        return max(timed) if timed else None

    @classmethod
    def from_stdio(cls, turn_group: str, windows: int) -> TurnGate:
        """Protocol on the process's real stdout; fd 1 then points at stderr, so that prints and
        library output cannot corrupt the protocol."""
        protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
        sys.stdout.flush()
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        return cls(turn_group, windows, sys.stdin, protocol)


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """Median over rounds of ``a[i] / b[i]`` (images/s of two contenders in the same round)."""
    if not a or len(a) != len(b):
        raise ValueError(f"paired windows differ in number: {len(a)} and {len(b)}")
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


class TurnError(RuntimeError):
    """A contender failed or broke the protocol; the message names it."""


class _Contender:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=cwd, text=True
        )

    def expect(self, what: str) -> str:
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            self.exited(what)
        return line.strip()

    def exited(self, what: str) -> NoReturn:
        code = self.proc.wait()
        if code >= 0:
            raise TurnError(f"{self.name} exited (code {code}) while {what}; its error is above")
        how = f"killed by {signal.Signals(-code).name}"
        if -code == signal.SIGKILL:
            # What the kernel's out-of-memory killer sends: the contenders hold a model each at once.
            how += (
                "; if the machine ran out of memory, time fewer contenders at once "
                "(a smaller --max-contenders, or --pairing sequential)"
            )
        raise TurnError(f"{self.name} exited ({how}) while {what}")

    def ready(self) -> None:
        line = self.expect("preparing")
        if line != READY:
            raise TurnError(f"{self.name}: expected {READY!r}, got {line!r}")

    def window(self) -> float:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(GO + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:  # it died while the others had their turns
            self.exited("waiting for its turn")
        line = self.expect("timing a window")
        try:
            return float(json.loads(line)["seconds"])
        except (ValueError, KeyError, TypeError):
            raise TurnError(f"{self.name}: expected a window's seconds, got {line!r}") from None

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()


def run_turns(
    contenders: Sequence[tuple[str, list[str], dict[str, str]]],
    rounds: int,
    cwd: Path,
    log: Callable[[str], None] = print,
) -> dict[str, list[float]]:
    """Start every ``(name, argv, env)`` worker, wait until all are prepared, then run ``rounds``
    rounds of one window each in rotated order; returns every contender's window seconds.

    The workers write their own records when their stdin closes; their exit status is checked.
    """
    started: list[_Contender] = []
    try:
        for name, argv, env in contenders:
            started.append(_Contender(name, argv, env, cwd))
        for c in started:
            c.ready()
        seconds: dict[str, list[float]] = {c.name: [] for c in started}
        for r in range(rounds):
            order = started[r % len(started) :] + started[: r % len(started)]
            for c in order:
                seconds[c.name].append(c.window())
            log(
                f"[bench] round {r}/{rounds - 1}"
                + (" (warm-up)" if r == 0 else "")
                + ": "
                + ", ".join(f"{c.name} {seconds[c.name][-1]:.2f} s" for c in started)
            )
        for c in started:
            c.release()
        for c in started:
            code = c.proc.wait()
            if code != 0:
                raise TurnError(f"{c.name} failed (exit {code}) writing its results")
        return seconds
    finally:
        for c in started:
            if c.proc.poll() is None:
                c.proc.kill()
                c.proc.wait()
