"""Benchmark (issue 26): what tracing adds per event on the commit path, on and off.

The worker's committer is timed on batches of realistic decided records (the example
community's outputs, a gateway `traceparent` on each input) with an inner committer that does
nothing, so only the tracing work is measured:

- off: the committer as the member uses it when no OTEL_* variable asks for traces
  (`worker.ops.tracing.traced` returns it unchanged: nothing runs per batch or event);
- on: `traced` with the OTLP/HTTP exporter sending to an in-process receiver
  (tests/support/otlp.py) and the default sampler (every span recorded); the export runs on the
  BatchSpanProcessor's thread, so it competes for the same core.

Per event, the minimum over repeats; compare with the worker's own cost per event
(docs/performance.md: 31-75 µs). Prints one JSON line.

    .venv/bin/python bench/tracing_cost.py [--batch 2000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

from aiokafka.structs import ConsumerRecord

from worker.core.reasons import Outcome
from worker.core.records import Output


class Nothing:
    async def commit(self, producer: Any, consumer: Any, batch: list[Any], offsets: Any) -> None:
        return None


def batch_of(size: int) -> list[Any]:
    from worker.runtime.decide import Decided

    headers = (("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), ("x", b"1"))
    output = Output(Outcome.ENRICHED, {"community_id": "acme", "event_id": "e"}, rendered=b"{}")
    return [
        Decided(ConsumerRecord("identity.raw", 0, n, 0, 0, b"k", b"{}", None, 1, 2, headers), output)
        for n in range(size)
    ]


async def per_event(committer: Any, size: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        batch = batch_of(size)
        start = time.perf_counter()
        await committer.commit(None, None, batch, {})
        best = min(best, time.perf_counter() - start)
    return best / size * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    from worker.ops import tracing

    off = tracing.traced(Nothing(), "g")
    assert isinstance(off, Nothing), "OTEL_* set in the environment: unset them to measure off"
    from tests.support.otlp import otlp_receiver

    with otlp_receiver() as receiver:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
        on = tracing.traced(Nothing(), "g")
        result = {
            "batch": args.batch,
            "off_us_per_event": round(await per_event(off, args.batch, args.repeats), 3),
            "on_us_per_event": round(await per_event(on, args.batch, args.repeats), 3),
            "load": os.getloadavg()[0],
        }
        tracing.flush()
        spans = len(receiver.spans)
    result["spans_received"] = spans
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
