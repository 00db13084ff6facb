"""T1's pause metric: a pause of the event loop shows in a histogram, a gauge and one log line."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import generate_latest

from worker.ops.metrics import LoopLag, Metrics


def pauses_over_bound(metrics: Metrics) -> float:
    """The lag histogram's observations above 0.05 s, the bound: its +Inf bucket less le=0.05."""
    bucket = "identity_worker_event_loop_lag_seconds_bucket"
    read = metrics.registry.get_sample_value
    return float(read(bucket, {"le": "+Inf"}) or 0) - float(read(bucket, {"le": "0.05"}) or 0)


async def test_a_pause_of_the_loop_is_measured_and_reported(capsys: pytest.CaptureFixture[str]) -> None:
    metrics = Metrics()
    lag = LoopLag(metrics, interval=0.005, bound=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(lag.run(stop))
    await asyncio.sleep(0.05)
    quiet = pauses_over_bound(metrics)  # 0 on a quiet machine; a loaded one may add late timers of its own
    time.sleep(0.12)  # the loop is held, though not computing: nothing else can run
    await asyncio.sleep(0.05)
    held_by_sleep = lag.longest_held
    end = time.thread_time() + 0.08
    while time.thread_time() < end:  # held by computing
        pass
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 1)
    assert lag.longest >= 0.1 and pauses_over_bound(metrics) >= quiet + 2
    assert held_by_sleep < 0.05 <= lag.longest_held  # only the busy pause was the loop's computing
    text = generate_latest(metrics.registry).decode()
    assert 'identity_worker_event_loop_lag_seconds_bucket{le="0.05"}' in text
    assert f"identity_worker_event_loop_lag_max_seconds {lag.longest}" in text
    assert f"identity_worker_event_loop_held_max_seconds {lag.longest_held}" in text
    assert "event loop paused longer than the bound" in capsys.readouterr().out
