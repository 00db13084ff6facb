"""The verified-token cache of rule C4: bounded, per community, keyed by token digest.

An entry remembers what a good signature established (V4–V8 and the claims outcome) so a
token seen again skips parsing and signature work until its exp. The entry carries the
community's `keys_version`: after any key change the old entries no longer match, and
`invalidate` drops them. Time rules and the mode are checked by the caller every time.

Admission follows the traffic the cache sees (measured in bench/cost_cuts.py):

- When tokens are mostly seen once (a visitor's one page view), an entry for each is pure
  cost: its insert, its eviction and its objects kept alive (unique HS256: +1.1-1.6 µs of a
  28 µs event). A token's first good verification then only notes its digest (bytes, which
  the collector never walks); the second makes the entry, the third is a hit.
- When tokens come back (hits are at least `ADMIT_AT_ONCE_HIT_SHARE` of the lookups of the
  last `ADMISSION_WINDOW`), that second verification is the cost (90 % repeated: 2 µs of a
  14.5 µs event): an entry is made at the first good verification.

Either way the notes hold no verdict: a token is verified in full until it has an entry, and
an entry obeys C2/C4 as before. The choice only decides when an entry is made.
"""

from __future__ import annotations

import hashlib
import sys
from collections import OrderedDict
from dataclasses import dataclass
from itertools import islice

from worker.core.records import Derived
from worker.core.verify import VerifiedToken

DEFAULT_MAX_ENTRIES = 65536
#: Lookups over which the hit share is measured, and the share from which a token's first good
#: verification makes its entry (below it, the second does).
ADMISSION_WINDOW = 4096
ADMIT_AT_ONCE_HIT_SHARE = 0.125
DIGEST_SIZE = 32  # SHA-256: 0.44 µs for a 400-character token where BLAKE2b-128 took 0.63
_DIGEST_BYTES = sys.getsizeof(bytes(DIGEST_SIZE))  # one digest object's size


def token_digest(token: str) -> bytes:
    """Keys hold a digest, not the token, so the cache never holds a presentable credential index."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass(slots=True)
class Entry:
    """One verified token, and the enriched record's part derived from it for one configuration.

    The memo policy is this class's: the verification that makes an entry (`TokenCache.put`)
    also keeps (`keep`) the `records.Derived` it made (mapping result and output JSON
    fragment), so a cached token is derived once, not again at its first hit (90 % repeated:
    0.35 µs an event); a token only noted keeps nothing. `derived_for` serves it for the
    `Community` object it names only: a reloaded configuration is a new object, so a mapping
    or custom-field change is never served from an old one (it is derived and kept again).
    """

    keys_version: str
    verified: VerifiedToken
    derived: Derived | None = None

    def derived_for(self, community: object) -> Derived | None:
        """The memo made for this very `community` object, else None (make it, then `keep` it)."""
        derived = self.derived
        return derived if derived is not None and derived.community is community else None

    def keep(self, derived: Derived) -> Derived:
        """Remember `derived` (replacing a memo of an older configuration); returns it."""
        self.derived = derived
        return derived


class TokenCache:
    """Least-recently-used, at most `max_entries` entries."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, bytes], Entry] = OrderedDict()
        # Digests of tokens verified once, in two generations of at most `_seen_limit` each: a
        # full current one becomes the previous one (the older notes go), so at most
        # `max_entries` notes of `DIGEST_SIZE` bytes are kept, and a note lives at least `_seen_limit` puts.
        self._seen: set[bytes] = set()
        self._seen_before: set[bytes] = set()
        self._seen_limit = max(1, max_entries // 2)
        self.hits = 0
        self.misses = 0
        self.admit_at_once = False  # the hit share of the last window decides (module docstring)
        self._window_hits = self._window_misses = 0  # `hits`, `misses` when the window began

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(community_id: str, token: str) -> tuple[str, bytes]:
        """The entry's key; computed once per event and passed to `entry` and `put`."""
        return community_id, token_digest(token)

    def entry(self, key: tuple[str, bytes], keys_version: str, now: float) -> Entry | None:
        """The live entry under `key`, or None (absent, keys changed since, or past its exp)."""
        entry = self._entries.get(key)
        if entry is None or entry.keys_version != keys_version or entry.verified.exp <= now:
            if entry is not None:
                del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: tuple[str, bytes], keys_version: str, verified: VerifiedToken) -> Entry | None:
        """Remember a good verification under `key` from the token's second one on; the entry,
        or None when only the digest is noted (a first one while tokens are seldom seen again)."""
        if self.hits + self.misses - self._window_hits - self._window_misses >= ADMISSION_WINDOW:
            self._measure_window()
        digest = key[1]  # a token's digest is its note in every community: an early admission
        if not self.admit_at_once and digest not in self._seen and digest not in self._seen_before:
            if len(self._seen) >= self._seen_limit:
                self._seen_before, self._seen = self._seen, self._seen_before
                self._seen.clear()
            self._seen.add(digest)
            return None
        entry = self._entries[key] = Entry(keys_version, verified)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return entry

    def _measure_window(self) -> None:
        """Close the window of lookups: admit at once from now on iff its hit share is high."""
        hits, misses = self.hits - self._window_hits, self.misses - self._window_misses
        self.admit_at_once = hits >= ADMIT_AT_ONCE_HIT_SHARE * (hits + misses)
        self._window_hits, self._window_misses = self.hits, self.misses

    def newest(self, count: int) -> list[tuple[tuple[str, bytes], Entry]]:
        """The `count` most recently used entries (a sample for estimating memory, DESIGN §7)."""
        return list(islice(reversed(self._entries.items()), count))

    def table_bytes(self) -> int:
        """The size of the table itself (its slots and links), without the keys and entries,
        and of the admission notes (their sets and digests)."""
        notes = len(self._seen) + len(self._seen_before)
        return (
            sys.getsizeof(self._entries)
            + sys.getsizeof(self._seen)
            + sys.getsizeof(self._seen_before)
            + notes * _DIGEST_BYTES
        )

    def invalidate(self, community_id: str) -> int:
        """Drop a community's entries (its keys changed); returns how many went."""
        stale = [key for key in self._entries if key[0] == community_id]
        for key in stale:
            del self._entries[key]
        return len(stale)
