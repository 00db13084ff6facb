"""Step 4 of bench/scale.py: the worker's CPU per event, spread over all N communities and on one
(DESIGN §12, T6: spread ≤ 1.25 × one).

What one window measures (unchanged since the first version of the bench): a backlog of
`backlog` events (unique HS256 tokens, kid k1) is sent, either spread over every community
(community (k × 7919) mod N) or all on community 1; the figure is the worker process's CPU
between the first and the last of their outputs read back, divided by `backlog`. Kinds alternate
(spread, one, spread, one, ...) with `flush + 1` seconds between windows, so the usage counts of
a spread window are flushed before the next window begins.

How exactly it is read:
- `windows` windows of each kind; the figure of a kind is the median of its windows. One window
  of 10 000 events is ~0.3 s of worker CPU: single windows of one kind varied by ±10 % in a row.
- CPU is read from /proc/<pid>/task/*/schedstat (nanoseconds, every thread of the worker and of
  its descendants) every 5 ms. /proc/<pid>/stat counts whole clock ticks (10 ms: ±20 ms on a
  ~300 ms window); that reading (`kbench.procstat.CpuSampler`, what the first version used) is
  kept beside it in every window, and the first window of each kind read that way is the first
  version's figure exactly (`cpu_first_window_ticks_us`).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from kbench.procstat import CpuSampler


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return found


def precise_cpu(root: int) -> float:
    """CPU seconds (nanosecond counts) of every live thread of `root` and its descendants."""
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            try:
                total += int(stat.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
        todo += _children(pid)
    return total / 1e9


class PreciseSampler(CpuSampler):
    """`CpuSampler` reading `precise_cpu(pid)` every 5 ms (`at(t)` interpolates, as there)."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        super().__init__(pid, interval)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.times.append(time.time())
            self.cpu.append(precise_cpu(self.pid))
            self._stop.wait(self.interval)


async def cpu_per_event(
    *,
    pid: int,
    n: int,
    backlog: int,
    windows: int,
    flush: float,
    make_event: Callable[[str, int, int], bytes],
    send: Callable[[str, bytes], Awaitable[None]],
    seen: dict[str, tuple[float, str]],
    wait_for: Callable[[list[str], float], Awaitable[None]],
    rows_written: Callable[[], float],
) -> dict[str, Any]:
    """T6's figures: `make_event(key, community index, token number)`, `send(key, value)`, `seen`
    (key → (when read back, topic)), `wait_for(keys, timeout)`, `rows_written()` (the worker's
    usage_rows_written metric). Returns the row's cpu_* and count_rows_* fields."""
    picks = (("spread", lambda k: (k * 7919) % n), ("one", lambda k: 1))
    found: list[dict[str, Any]] = []
    for w in range(windows):
        for name, pick in picks:
            # window 0 is the first version's exactly; later ones use tokens never sent before
            first_token = 10**6 if w == 0 else 10**6 + (2 * w + (name == "one")) * backlog
            prefix = name if w == 0 else f"{name}{w}"
            rows_before = rows_written()
            values = [
                (f"{prefix}-{k}", make_event(f"{prefix}-{k}", pick(k), first_token + k))
                for k in range(backlog)
            ]  # signed before the clock starts
            with CpuSampler(pid) as ticks, PreciseSampler(pid) as precise:
                t0 = time.time()
                for key, value in values:
                    await send(key, value)
                await wait_for([k for k, _ in values], 300)
                t1 = max(seen[k][0] for k, _ in values if k in seen)
                first = min(seen[k][0] for k, _ in values if k in seen)
            flushed_inside = rows_written() > rows_before  # a usage flush ran before the window ended
            await asyncio.sleep(flush + 1)
            found.append(
                {
                    "kind": name,
                    "us": (precise.at(t1) - precise.at(first)) / backlog * 1e6,
                    "ticks_us": (ticks.at(t1) - ticks.at(first)) / backlog * 1e6,
                    "seconds": t1 - first,
                    "flush_inside": flushed_inside,
                    "rows_per_s": (rows_written() - rows_before) / (time.time() - t0),
                    "load": os.getloadavg()[0],
                }
            )
    row: dict[str, Any] = {"cpu_windows": found}
    for name, _ in picks:
        mine = [f for f in found if f["kind"] == name]
        row[f"cpu_{name}_us"] = statistics.median(f["us"] for f in mine)
        row[f"count_rows_{name}_per_s"] = mine[0]["rows_per_s"]
    row["cpu_first_window_ticks_us"] = [
        next(f["ticks_us"] for f in found if f["kind"] == k) for k, _ in picks
    ]
    return row
