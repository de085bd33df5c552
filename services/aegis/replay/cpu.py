"""CPU seconds of a replay's processes, read from ``/proc`` (Linux): where the machine's cores went.

A replay runs PostgreSQL, Redis and six services as processes on a host that may have few cores; a service that
burns CPU during the timed part takes it from the feed and the brain. :class:`CpuMeter` samples, at the replay's
completion polls, the CPU time (user + system) of every supervised process *and its descendants* (PostgreSQL's
backends are children of the postmaster), and :meth:`CpuMeter.between` gives each one's CPU seconds between two
wall-clock instants — from the last sample at or before the start to the first at or after the end, so the
interval it reports covers the asked one plus at most one poll on each side (``interval_s`` says how long it was).

A process tree's CPU is the sum over its live processes of ``utime + stime + cutime + cstime`` (``/proc/<pid>/stat``
fields 14-17): a child that exited and was waited for is counted in its parent's ``cutime``/``cstime``, so short-lived
backends are not lost. The clock tick is ``SC_CLK_TCK`` (10 ms on most systems): figures are that coarse.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from pathlib import Path
from typing import Any

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def _stat_ticks(pid: int) -> int | None:
    """``utime + stime + cutime + cstime`` of ``pid`` in clock ticks, None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()  # fields from the state (field 3) on: comm may hold spaces
    return int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            out.extend(int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_bytes().split())
        except (OSError, ValueError):
            continue
    return out


def tree_cpu_s(pid: int) -> float | None:
    """CPU seconds of ``pid`` and every descendant (live, or exited and reaped), None if ``pid`` is gone."""
    own = _stat_ticks(pid)
    if own is None:
        return None
    ticks, stack, seen = own, _children(pid), {pid}
    while stack:
        child = stack.pop()
        if child in seen:
            continue
        seen.add(child)
        t = _stat_ticks(child)
        if t is not None:
            ticks += t
            stack.extend(_children(child))
    return ticks * TICK_S


def self_cpu_s() -> float:
    """CPU seconds of this process (the replay's runner: completion polls, progress, the meter itself)."""
    times = os.times()
    return times.user + times.system


class CpuMeter:
    """Samples of every named process tree's CPU seconds, stamped with the wall clock (Unix seconds)."""

    def __init__(self, pids: Callable[[], dict[str, int]], *, include_self: str | None = "runner") -> None:
        """``pids``: the current pid of every process to watch, by name (asked at every sample: a restarted
        service has a new pid; its old process's CPU is then no longer counted). ``include_self``: name under which
        this process's own CPU is sampled (None: not sampled)."""
        self._pids = pids
        self._self = include_self
        self.stamps: list[float] = []
        self.samples: list[dict[str, float]] = []

    def sample(self) -> None:
        now = time.time()
        row = {}
        for name, pid in self._pids().items():
            cpu = tree_cpu_s(pid)
            if cpu is not None:
                row[name] = cpu
        if self._self is not None:
            row[self._self] = self_cpu_s()
        self.stamps.append(now)
        self.samples.append(row)

    def between(self, start_s: float, end_s: float) -> dict[str, Any] | None:
        """Each process's CPU seconds over the sampled interval that covers ``[start_s, end_s]`` (Unix seconds):
        ``{"interval_s", "before_start_s", "after_end_s", "processes": {name: s}, "total_s"}``, largest first;
        None if no two samples bracket it."""
        first = bisect_right(self.stamps, start_s) - 1
        last = bisect_left(self.stamps, end_s)
        if first < 0 or last >= len(self.stamps) or last <= first:
            return None
        a, b = self.samples[first], self.samples[last]
        used = {n: round(b[n] - a[n], 2) for n in b if n in a}
        used = dict(sorted(used.items(), key=lambda kv: (-kv[1], kv[0])))
        return {
            "interval_s": round(self.stamps[last] - self.stamps[first], 3),
            "before_start_s": round(start_s - self.stamps[first], 3),
            "after_end_s": round(self.stamps[last] - end_s, 3),
            "processes": used,
            "total_s": round(sum(used.values()), 2),
        }
