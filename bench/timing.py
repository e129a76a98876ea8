"""Timing primitives shared by every measurement: steady-state windows, latencies, CPU contention."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def time_rounds(
    fns: Sequence[Callable[[], object]],
    warmup: int,
    calls: int,
    rounds: int = 1,
    settle: int = 0,
) -> list[list[list[float]]]:
    """Wall seconds of calls of several functions taking turns: ``times[f][r]`` holds the ``calls``
    timed calls of ``fns[f]`` in round ``r``.

    Every function first gets ``warmup`` untimed calls. In round ``r`` each function runs a block:
    ``settle`` untimed calls, then ``calls`` timed ones; the round starts at function ``r mod
    len(fns)``, so none always goes first, and drift of the machine between rounds hits all of them
    alike: per-round ratios compare like paired measurements (`bench.turns.paired_ratio`). The
    settle calls are there because a runtime's idle thread pool keeps spinning for a while after its
    last call: one call per turn would time the neighbour's spinning threads, not the function.
    """
    for fn in fns:
        for _ in range(warmup):
            fn()
    times: list[list[list[float]]] = [[] for _ in fns]
    for r in range(rounds):
        for k in range(len(fns)):
            i = (r + k) % len(fns)
            for _ in range(settle):
                fns[i]()
            block = []
            for _ in range(calls):
                start = time.perf_counter()
                fns[i]()
                block.append(time.perf_counter() - start)
            times[i].append(block)
    return times


def _busy_seconds() -> float | None:
    """CPU seconds all processes spent busy on this machine (Linux /proc/stat), None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(v) for v in fields]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU seconds of this process, of its child processes that ended and were waited for (a
    DataLoader's workers, joined at the end of a window), and of those still running."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system + _live_children_seconds()


def _live_children_seconds() -> float:
    """CPU seconds of this process's running child processes (Linux /proc; 0 elsewhere)."""
    return sum(_live_children().values())


def _live_children() -> dict[int, float]:
    """CPU seconds of each running child process of this process, by pid (Linux /proc; none
    elsewhere)."""
    children: set[str] = set()
    try:
        for task in Path("/proc/self/task").iterdir():
            children.update((task / "children").read_text().split())
    except OSError:
        return {}
    seconds: dict[int, float] = {}
    for pid in children:
        try:
            # After the command name (which may hold spaces): utime and stime, fields 14 and 15.
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        seconds[int(pid)] = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


class ForeignLoad:
    """Measures how many CPU cores *other* processes kept busy while a block ran.

    A benchmark on a shared machine is only as good as its quietness; the 1-minute load average
    cannot tell the benchmark's own threads from other work, the difference of busy CPU time below can.
    """

    def __enter__(self) -> ForeignLoad:
        self._busy, self._own, self._wall = _busy_seconds(), _own_seconds(), time.monotonic()
        self.cores: float | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        busy = _busy_seconds()
        wall = time.monotonic() - self._wall
        if busy is None or self._busy is None or wall <= 0:
            return
        foreign = (busy - self._busy) - (_own_seconds() - self._own)
        self.cores = round(max(foreign, 0.0) / wall, 2)


UNDER_LOAD_CORES = 0.25  # other processes kept more than a quarter of a core busy


def device_label(device: str, foreign_cores: float | None) -> str:
    """The device string, marked when other processes competed for the CPU during the measurement."""
    if foreign_cores is not None and foreign_cores > UNDER_LOAD_CORES:
        return f"{device} (under load: other processes used {foreign_cores:.2f} cores)"
    return device
