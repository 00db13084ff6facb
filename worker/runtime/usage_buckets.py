"""The counts a worker holds between two usage flushes (DESIGN §11, L1, L5; T6), without I/O.

`Buckets.count` adds one committed batch's outputs; `rows` gives what a flush writes
(`worker.store.usage.write_counts`); `merge_rows` takes back what a failed flush could not write.

T6: events spread over many communities make a new bucket per event (a health bucket and a key
bucket: two rows). The buckets are therefore held in groups — health by (minute, outcome, reason),
key usage by (kid, hour) — and inside a group in dicts keyed by community id whose values are
numbers or text. Counting an event then makes no object the garbage collector tracks (a dict
holding only text and numbers is never tracked, the community id is the output's own string):
a tuple and a tally object per bucket were 4 tracked allocations an event, which triggered a
young collection every ~2 500 events (each walking the pending buckets) where one community
triggers none (bench/scale.py step 4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Final, NamedTuple

from worker.core.reasons import Outcome, Reason
from worker.core.records import Output
from worker.store.usage import HealthCountsRow, KeyCountsRow

NO_COMMUNITY: Final = ""

KeyBucket = tuple[str, str, float]  # community, kid, hour (epoch seconds)
HealthBucket = tuple[str, float, str, str]  # community, minute, outcome, reason

_TEXT: Final[dict[Outcome | Reason | None, str]] = {
    None: "",
    **{outcome: outcome.value for outcome in Outcome},
    **{reason: reason.value for reason in Reason},
}


class KeyTally(NamedTuple):
    """A key bucket's counts (the `UsageRecorder.keys` view)."""

    verified: int = 0
    signature_failures: int = 0
    last_verified_at: float | None = None
    last_failure_at: float | None = None


class HealthTally(NamedTuple):
    """A health bucket's counts (the `UsageRecorder.health` view)."""

    events: int
    last_detail: str | None
    last_at: float


class _HealthGroup:
    """The health buckets of one (minute, outcome, reason), by community."""

    __slots__ = ("details", "events", "last_at")

    def __init__(self) -> None:
        self.events: dict[str, int] = {}
        self.details: dict[str, str] = {}  # the last detail, for buckets that have one
        self.last_at: dict[str, float] = {}


class _KeyGroup:
    """The key buckets of one (kid, hour), by community; every bucket is in `verified`."""

    __slots__ = ("failures", "last_failure_at", "last_verified_at", "verified")

    def __init__(self) -> None:
        self.verified: dict[str, int] = {}
        self.failures: dict[str, int] = {}
        self.last_verified_at: dict[str, float] = {}
        self.last_failure_at: dict[str, float] = {}


class Buckets:
    """Pending counts: health buckets (L5) and key buckets (L1). `size` is how many buckets."""

    __slots__ = ("_health", "_keys", "size")

    def __init__(self) -> None:
        self._health: dict[tuple[float, str, str], _HealthGroup] = {}
        self._keys: dict[tuple[str, float], _KeyGroup] = {}
        self.size = 0

    def count(
        self,
        outputs: Sequence[Output],
        now: float,
        room: int,
        configured: Callable[[str], bool],
        on_counts: Callable[[str, str, str, int], None] | None,
    ) -> int:
        """Add one batch's outputs at `now` (epoch seconds), making at most `room` new buckets;
        returns the events not counted (their bucket would have been new when there was no room).

        What counts is the recorder's (module `worker.runtime.usage_recorder`); an exception
        before anything was added is the caller's to report (a record without its detail)."""
        per_batch: dict[tuple[Outcome, Reason | None, str | None], dict[str | None, int]] = {}
        details: dict[tuple[str | None, Reason], str] = {}
        for output in outputs:
            reason = output.reason
            group = (output.outcome, reason, output.kid)
            per = per_batch.get(group)
            if per is None:
                per = per_batch[group] = {}
            community_id = output.community_id
            per[community_id] = per.get(community_id, 0) + 1
            if reason is not None:  # a rejection: held as a dict (enriched records are JSON only)
                details[community_id, reason] = output.record["detail"]
        minute = now - now % 60
        hour = now - now % 3600
        dropped = 0
        known: dict[str | None, str] = {}
        for (outcome, reason, kid), per in per_batch.items():
            outcome_text, reason_text = _TEXT[outcome], _TEXT[reason]
            health = self._health_group(minute, outcome_text, reason_text)
            events, last_at, group_details = health.events, health.last_at, health.details
            keys = None if kid is None or reason is Reason.TOKEN_EXPIRED else self._key_group(kid, hour)
            failed = reason is Reason.INVALID_SIGNATURE
            for community_id, n in per.items():
                community = known.get(community_id)
                if community is None:
                    ok = community_id is not None and configured(community_id)
                    community = known[community_id] = community_id if ok and community_id else NO_COMMUNITY
                kept = True
                held = events.get(community)
                if held is None and room <= 0:
                    kept = False
                else:
                    if held is None:
                        room -= 1
                        self.size += 1
                    events[community] = (held or 0) + n
                    last_at[community] = now
                    detail = details[community_id, reason] if reason is not None else None
                    if detail is not None:
                        group_details[community] = detail
                if keys is not None and community:
                    if community not in keys.verified:
                        if room <= 0:
                            kept = False
                        else:
                            room -= 1
                            self.size += 1
                            keys.verified[community] = 0
                    if community in keys.verified:
                        if failed:
                            keys.failures[community] = keys.failures.get(community, 0) + n
                            keys.last_failure_at[community] = now
                        else:
                            keys.verified[community] += n
                            keys.last_verified_at[community] = now
                if not kept:
                    dropped += n
                if on_counts is not None:
                    on_counts(community, outcome_text, reason_text, n)
        return dropped

    def _health_group(self, minute: float, outcome: str, reason: str) -> _HealthGroup:
        group = self._health.get((minute, outcome, reason))
        if group is None:
            group = self._health[minute, outcome, reason] = _HealthGroup()
        return group

    def _key_group(self, kid: str, hour: float) -> _KeyGroup:
        group = self._keys.get((kid, hour))
        if group is None:
            group = self._keys[kid, hour] = _KeyGroup()
        return group

    def rows(self) -> tuple[list[KeyCountsRow], list[HealthCountsRow]]:
        """Every bucket as a row of `write_counts` (key rows, health rows)."""
        key_rows: list[KeyCountsRow] = [
            (c, kid, hour, n, g.failures.get(c, 0), g.last_verified_at.get(c), g.last_failure_at.get(c))
            for (kid, hour), g in self._keys.items()
            for c, n in g.verified.items()
        ]
        health_rows: list[HealthCountsRow] = [
            (c, minute, outcome, reason, n, g.details.get(c), g.last_at[c])
            for (minute, outcome, reason), g in self._health.items()
            for c, n in g.events.items()
        ]
        return key_rows, health_rows

    def merge_rows(self, key_rows: Iterable[KeyCountsRow], health_rows: Iterable[HealthCountsRow]) -> None:
        """Rows a flush could not write join what was counted meanwhile (no bound: they were
        counted against it while the flush ran). Counts add; the later time of each kind; the
        newer detail and time of a health bucket, the older detail when the newer has none."""
        for c, kid, hour, verified, failures, last_verified_at, last_failure_at in key_rows:
            keys = self._key_group(kid, hour)
            if c not in keys.verified:
                keys.verified[c] = 0
                self.size += 1
            keys.verified[c] += verified
            if failures:
                keys.failures[c] = keys.failures.get(c, 0) + failures
            for times, at in (
                (keys.last_verified_at, last_verified_at),
                (keys.last_failure_at, last_failure_at),
            ):
                if at is not None and (c not in times or times[c] < at):
                    times[c] = at
        for c, minute, outcome, reason, events, detail, last_at in health_rows:
            health = self._health_group(minute, outcome, reason)
            if c not in health.events:
                health.events[c] = 0
                health.last_at[c] = last_at
                self.size += 1
            health.events[c] += events
            if detail is not None and c not in health.details:
                health.details[c] = detail

    def key_view(self) -> dict[KeyBucket, KeyTally]:
        """Every key bucket and its tally (tests, diagnostics; not for the hot path)."""
        return {(row[0], row[1], row[2]): KeyTally(*row[3:]) for row in self.rows()[0]}

    def health_view(self) -> dict[HealthBucket, HealthTally]:
        """Every health bucket and its tally (tests, diagnostics; not for the hot path)."""
        return {(row[0], row[1], row[2], row[3]): HealthTally(*row[4:]) for row in self.rows()[1]}
