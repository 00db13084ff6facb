"""Durations and moments in the console's words (DESIGN §10, A5): the Handling form's fields are
seconds in the API and "1 h 30 min" on the page.

parse_duration("1 h 30 min") -> 5400       None when it is not a duration
show_duration(5400) -> "1 h 30 min"
ago(moment, now) -> "3 min ago"
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final

_UNITS: Final = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))
_UNIT_NAMES: Final = {
    **dict.fromkeys(("d", "day", "days"), 86400),
    **dict.fromkeys(("h", "hr", "hour", "hours"), 3600),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
}
_PART: Final = re.compile(r"\s*([0-9]{1,9})\s*([a-z]*)\s*,?", re.IGNORECASE)
#: The fields the Handling form reads as durations (seconds in the API).
DURATION_FIELDS: Final = (
    "min_validity_seconds",
    "leeway_seconds",
    "max_validity_seconds",
    "retirement_window_seconds",
)


def parse_duration(text: str) -> int | None:
    """Seconds from `3600`, `1 h`, `1h 30min`, `2 days`; None when `text` is not one."""
    text = text.strip()
    if not text:
        return None
    total, at = 0, 0
    while at < len(text):
        part = _PART.match(text, at)
        if part is None or part.end() == at:
            return None
        unit = part[2].lower()
        if unit not in _UNIT_NAMES and unit != "":
            return None
        total += int(part[1]) * _UNIT_NAMES.get(unit, 1)
        at = part.end()
    return total


def show_duration(seconds: int | None) -> str:
    """`1 h 30 min`, `10 s`, `0 s`; "" for None (no value)."""
    if seconds is None:
        return ""
    parts = []
    rest = seconds
    for unit, size in _UNITS:
        if rest >= size:
            parts.append(f"{rest // size} {unit}")
            rest %= size
    return " ".join(parts) or "0 s"


def ago(moment: datetime | None, now: datetime) -> str:
    """`3 min ago`, `2 h ago`, `just now`; "never" for None."""
    if moment is None:
        return "never"
    seconds = int((now - moment).total_seconds())
    if seconds < 60:
        return "just now" if seconds >= 0 else "in " + show_duration(-seconds)
    whole = next(size for _, size in _UNITS if seconds >= size)
    return f"{show_duration(seconds - seconds % whole)} ago"
