"""RFC 3339 times as the contracts read and write them (DESIGN §2): parsing with an offset and
nothing looser (V1's `received_at`), epoch seconds memoized for the pipeline, and the UTC text
every output writes (`processed_at`, `expires_at`).
"""

from __future__ import annotations

import functools
import math
import re
from datetime import UTC, datetime
from typing import Final

RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_RFC3339 = re.compile(RFC3339_PATTERN)


def parse_rfc3339(text: str) -> datetime:
    """RFC 3339 with an offset, nothing looser (no bare dates, no naive times, no numbers)."""
    if not _RFC3339.fullmatch(text):
        raise ValueError("must be an RFC 3339 time with an offset, e.g. 2026-11-24T10:00:00Z")
    head, _, rest = text.partition(".")
    if rest:  # Python keeps microseconds only; drop finer digits rather than fail.
        digits = re.match(r"[0-9]+", rest)
        assert digits is not None
        frac = digits.group(0)
        text = f"{head}.{frac[:6].ljust(6, '0')}{rest[len(frac) :]}"
    return datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))


# The instants every output can write back as RFC 3339 UTC: 0001-01-01T00:00:00Z up to, not
# including, 10000-01-01T00:00:00Z. An offset can push a valid-looking text outside them.
FIRST_UTC_SECOND: Final = -62135596800
END_UTC_SECOND: Final = 253402300800


@functools.lru_cache(maxsize=256)
def rfc3339_seconds(text: str) -> float:
    """`parse_rfc3339` as epoch seconds, memoized: V1 validates `received_at` and the pipeline
    then needs its value, so each event's second call is a lookup (an invalid text raises and
    is not kept). Instants `format_time` cannot write are refused here, as malformed input."""
    seconds = parse_rfc3339(text).timestamp()
    if not FIRST_UTC_SECOND <= seconds < END_UTC_SECOND:
        raise ValueError("must be a time from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z in UTC")
    return seconds


@functools.lru_cache(maxsize=4096)
def _utc_second(second: int) -> bytes:
    t = datetime.fromtimestamp(second, UTC)  # strftime's %Y drops the zeros of years before 1000
    return b"%04d-%02d-%02dT%02d:%02d:%02d" % (t.year, t.month, t.day, t.hour, t.minute, t.second)


def format_time_ascii(ts: float) -> bytes:
    """`format_time` as the ASCII bytes a record's JSON holds: an enriched record is assembled
    as bytes, and its `processed_at` is new for every event (0.34 µs against 0.5 for the text
    encoded)."""
    second = math.floor(ts)
    micros = round((ts - second) * 1_000_000)
    if micros >= 1_000_000:
        second, micros = second + 1, 0
    if micros:
        return b"%b.%06dZ" % (_utc_second(second), micros)
    return _utc_second(second) + b"Z"


def format_time(ts: float) -> str:
    """Output times are RFC 3339 UTC strings (DESIGN §2); whole seconds repeat, so they are memoized."""
    return format_time_ascii(ts).decode("ascii")
