"""Liveness and readiness (DESIGN §7, K8, K9, K10, C3): what /healthz and /readyz answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Health:
    """Alive while the event loop answers; ready while Kafka and the store are both current.

    Built once, by the member (`worker.runtime.member`), with what it reads: `store_degraded`,
    whether the configuration cache serves its last loaded communities (C3); `waiting`, the
    partitions held at a record that must wait (K9), so a community whose stored rows cannot be
    used shows here even while the store answers; `outputs_problem`, why outputs cannot be
    written, from the output topics as last read (K9), else None.

    `kafka_error` is set after an infrastructure fault and cleared by the next successful
    commit (not by a seek or a rewind: a commit that keeps failing keeps the worker not ready);
    `fatal` is set once a fatal misconfiguration stops the worker (K10); `started` and
    `stopping` by the service around the member's run.
    """

    store_degraded: Callable[[], bool]
    waiting: Callable[[], list[str]]
    outputs_problem: Callable[[], str | None]
    started: bool = False
    stopping: bool = False
    kafka_error: str | None = "not connected yet"
    fatal: str | None = None

    def kafka_failed(self, error: str) -> None:
        self.kafka_error = error

    def kafka_ok(self) -> None:
        self.kafka_error = None

    def problems(self) -> list[str]:
        found = []
        if self.fatal is not None:
            found.append(f"fatal: {self.fatal}")
        if not self.started:
            found.append("starting")
        if self.stopping:
            found.append("stopping")
        if self.kafka_error is not None:
            found.append(f"kafka: {self.kafka_error}")
        outputs = self.outputs_problem()
        if outputs is not None:
            found.append(f"outputs: {outputs}")
        if self.store_degraded():
            found.append("store: degraded (serving the last loaded configuration)")
        found.extend(f"waiting: {line}" for line in self.waiting())
        return found

    def ready(self) -> bool:
        return not self.problems()
