"""CPU seconds of a process and its descendants from /proc/<pid>/stat (no psutil).

A sampler thread records (wall time, CPU seconds) every few milliseconds so a measurement
window can be cut out after the fact (start-up and shutdown excluded).
"""

from __future__ import annotations

import bisect
import os
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(ppid, utime+stime seconds incl. waited-for children) of one process, None when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    # fields[0] is state (field 3); utime=14, stime=15, cutime=16, cstime=17 -> indexes 11..14
    ppid = int(fields[1])
    ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return ppid, ticks / TICK


def tree_cpu(root: int) -> float:
    """CPU seconds used so far by `root` and every live descendant."""
    stats: dict[int, tuple[int, float]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _stat(int(name))
            if stat is not None:
                stats[int(name)] = stat
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
            todo.extend(children.get(pid, []))
    return total


def machine_cpu() -> float:
    """CPU seconds every process on the machine has used (all cores), from /proc/stat."""
    with open("/proc/stat", "rb") as handle:
        fields = handle.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


def self_cpu() -> float:
    times = os.times()
    return times.user + times.system


class CpuSampler:
    """Samples tree_cpu(pid) every `interval` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.times: list[float] = []
        self.cpu: list[float] = []
        self.machine: list[float] = []  # machine_cpu() at the same instants: is the machine saturated?
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.times.append(time.time())
            self.cpu.append(tree_cpu(self.pid))
            self.machine.append(machine_cpu())
            self._stop.wait(self.interval)

    def at(self, when: float, series: list[float] | None = None) -> float:
        """CPU seconds (of the tree, or of `series`) at wall time `when`, interpolated."""
        cpu = self.cpu if series is None else series
        i = bisect.bisect_left(self.times, when)
        if i <= 0:
            return cpu[0]
        if i >= len(self.times):
            return cpu[-1]
        t0, t1 = self.times[i - 1], self.times[i]
        c0, c1 = cpu[i - 1], cpu[i]
        return c0 + (c1 - c0) * ((when - t0) / (t1 - t0) if t1 > t0 else 0.0)
