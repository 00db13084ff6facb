"""Structured JSON logs on stderr (DESIGN §7): one object per line, never a secret or a token.

Every string value passes `scrub`: `core.redaction.redact` (token-shaped and HMAC-secret-shaped
text is replaced) and `redact_dsn` (a URL/DSN loses its password and secret parameters).
aiokafka's own stdlib logs go through the same renderer.
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
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
        )
    )
    handler.addFilter(RepeatLimit())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    logging.getLogger("aiokafka").setLevel(max(numeric, logging.WARNING))
