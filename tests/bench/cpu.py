"""CPU-seconds per process group, from /proc, so that a benchmark shows where the time went.

A group is a root process and every process below it (uvicorn's workers are children of the
service's process; PostgreSQL's backends are children of the postmaster). A group's CPU is
the sum, over its live processes, of their own user+system time plus that of the children
they reaped: a backend that ended during the run is counted once, in the postmaster.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: fields start after the last ")".
    return stat[stat.rfind(")") + 2 :].split(" ")


def _parents() -> dict[int, list[int]]:
    """Every live pid's children, from one pass over /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def tree(root: int, children: Mapping[int, list[int]]) -> list[int]:
    """`root` and every process below it."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _cpu_seconds(pid: int) -> float:
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # Fields 14-17 of proc(5), counted from 1 with pid and comm: utime, stime, cutime, cstime.
    return sum(int(v) for v in fields[11:15]) / CLOCK_TICKS


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) core-seconds since boot, from /proc/stat's cpu line."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


@dataclass
class CpuMeter:
    """Samples each group's CPU-seconds before and after a run.

    `groups` maps a name to a function giving the group's root pids now (None or [] if it is
    not running): the roots are looked up at each sample, so a process started in between
    (wrk, the mail clients) can be added as an `extra` figure instead.
    """

    groups: Mapping[str, Callable[[], list[int]]]
    _before: dict[str, float] = field(default_factory=dict)
    _machine_before: tuple[float, float] = (0.0, 0.0)

    def sample(self) -> dict[str, float]:
        children = _parents()
        out = {}
        for name, roots in self.groups.items():
            pids = {p for root in roots() for p in tree(root, children)}
            out[name] = sum(_cpu_seconds(p) for p in pids)
        return out

    def start(self) -> None:
        self._before = self.sample()
        self._machine_before = machine_busy_seconds()

    def stop(self, extra: Mapping[str, float] | None = None) -> CpuUse:
        after = self.sample()
        busy, total = machine_busy_seconds()
        used = {name: after[name] - self._before.get(name, 0.0) for name in after}
        used.update(extra or {})
        return CpuUse(used, busy - self._machine_before[0], total - self._machine_before[1])


@dataclass(frozen=True)
class CpuUse:
    by_group: dict[str, float]
    machine_busy: float  # core-seconds busy on the whole machine during the run
    machine_total: float  # core-seconds there were (cores x wall time)

    @property
    def wall_seconds(self) -> float:
        return self.machine_total / (os.cpu_count() or 1)

    def table(self, operations: int, what: str = "operations") -> str:
        """A small table: CPU-s, per 1,000 operations, cores busy on average over the run."""
        wall_seconds = self.wall_seconds
        per = 1000 / operations if operations else float("nan")
        lines = [f"    {'process':<16} {'CPU-s':>8} {'per 1,000 ' + what:>22} {'cores':>6}"]
        for name, seconds in sorted(self.by_group.items(), key=lambda kv: -kv[1]):
            lines.append(f"    {name:<16} {seconds:8.2f} {seconds * per:22.3f} {seconds / wall_seconds:6.2f}")
        counted = sum(self.by_group.values())
        lines.append(
            f"    {'(machine)':<16} {self.machine_busy:8.2f} {self.machine_busy * per:22.3f}"
            f" {self.machine_busy / wall_seconds:6.2f}   of {self.machine_total:.1f} core-s;"
            f" not in the groups above: {self.machine_busy - counted:.2f}"
        )
        return "\n".join(lines)
