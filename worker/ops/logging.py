"""Structured JSON logs on stderr (DESIGN §7): one object per line, never a secret or a token.

Every string value passes `scrub`: `core.redaction.redact` (token-shaped and HMAC-secret-shaped
text is replaced) and `redact_dsn` (a URL/DSN loses its password and secret parameters).
aiokafka's own stdlib logs go through the same renderer, with a `logger` field naming the
client's module, at the level they deserve (`ClientLevels`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import structlog

from worker.core.redaction import redact, redact_dsn


def scrub(text: str) -> str:
    return redact_dsn(redact(text))


# Names the operator chose, never event data. Dotted ones such as "acme-prod.identity.enriched"
# or a transactional id are token-shaped, and hiding them would hide which topic or producer
# a line is about.
IDENTIFIER_KEYS: frozenset[str] = frozenset(
    {
        "topic",
        "input_topic",
        "enriched_topic",
        "rejected_topic",
        "dlq_topic",
        "group_id",
        "transactional_id",
        "client_id",
        "logger",  # a client library's module, e.g. aiokafka.consumer.group_coordinator
    }
)


def scrub_event(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if isinstance(value, str) and key not in IDENTIFIER_KEYS:
            event[key] = scrub(value)
    return event


class RepeatLimit(logging.Filter):
    """At most `per_window` records per logger and message template per `window` seconds.

    aiokafka logs one warning per partition per retry; during a broker hiccup that is
    thousands of lines a second, which buries the worker's own lines and, where stderr is
    drained slowly, blocks the event loop on the write. The first record of the next window
    says how many were held back.
    """

    def __init__(
        self, per_window: int = 5, window: float = 10.0, clock: Callable[[], float] = time.monotonic
    ):
        super().__init__()
        self.per_window = per_window
        self.window = window
        self.clock = clock
        self._seen: dict[tuple[str, str], list[float]] = {}  # key → [window start, shown, held back]

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self.clock()
        state = self._seen.get(key)
        if state is None or now - state[0] >= self.window:
            held = int(state[2]) if state is not None else 0
            if held:
                record.msg = (
                    f"{record.msg} [{held} similar lines held back in the previous {self.window:g} s]"
                )
            if len(self._seen) > 10_000:
                self._seen.clear()
            self._seen[key] = [now, 1, 0]
            return True
        if state[1] < self.per_window:
            state[1] += 1
            return True
        state[2] += 1
        return False


class ClientLevels(logging.Filter):
    """aiokafka's lines at the level they deserve (docs/operations.md "Logs").

    A consumer's first contact with a new broker, or a new group, finds no group coordinator
    until the broker has made `__consumer_offsets`: aiokafka logs each retry of the lookup as an
    error and each coordinator it gives up as a warning, though nothing is wrong. Until the
    member has started (`started`), a retriable coordinator lookup failure and a coordinator
    marked dead are info; afterwards (a broker restart, a coordinator moving: K8, retried by
    the client) they are warnings, not errors. Matched by logger, message template and the
    error argument's type, never by the rendered text. A record below the root logger's
    level after the change is dropped.
    """

    COORDINATOR = "aiokafka.consumer.group_coordinator"
    LOOKUP_FAILED = "Group Coordinator Request failed: %s"
    MARKED_DEAD = "Marking the coordinator dead (node %s)for group %s."

    def __init__(self) -> None:
        super().__init__()
        self.starting = True

    def started(self) -> None:
        self.starting = False

    def level_of(self, record: logging.LogRecord) -> int:
        if record.name != self.COORDINATOR:
            return record.levelno
        if record.msg == self.LOOKUP_FAILED:
            error = record.args[0] if isinstance(record.args, tuple) and record.args else None
            if not getattr(error, "retriable", False):
                return record.levelno
        elif record.msg != self.MARKED_DEAD:
            return record.levelno
        return logging.INFO if self.starting else min(record.levelno, logging.WARNING)

    def filter(self, record: logging.LogRecord) -> bool:
        level = self.level_of(record)
        if level != record.levelno:
            record.levelno, record.levelname = level, logging.getLevelName(level)
        return level >= logging.getLogger().getEffectiveLevel()


#: The filter of the process's log handler; `client_started` ends its start-up phase.
_CLIENT_LEVELS = ClientLevels()


def client_started() -> None:
    """The member has started: coordinator trouble from now on is a warning (ClientLevels)."""
    _CLIENT_LEVELS.started()


class ProgressGate:
    """Whether the progress line is due: when what it says changed, or `idle_every` seconds after
    the last one (an idle worker says it is alive without a line every few seconds)."""

    def __init__(self, idle_every: float) -> None:
        self.idle_every = idle_every
        self._said: object = None
        self._at = -float("inf")

    def due(self, state: object, now: float) -> bool:
        if state != self._said or now - self._at >= self.idle_every:
            self._said, self._at = state, now
            return True
        return False


def configure_logging(level: str = "info", *, member: int | None = None) -> None:
    numeric = getattr(logging, level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: list[Any] = [
        structlog.processors.format_exc_info,
        scrub_event,
        structlog.processors.JSONRenderer(),
    ]
    structlog.configure(
        processors=[*shared, *renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    if member is not None:
        structlog.contextvars.bind_contextvars(member=member)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
        )
    )
    handler.addFilter(_CLIENT_LEVELS)
    handler.addFilter(RepeatLimit())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    logging.getLogger("aiokafka").setLevel(max(numeric, logging.WARNING))
