"""The verified-token cache of rule C4: bounded, per community, keyed by token digest.

An entry remembers what a good signature established (V4–V8 and the claims outcome) so a
token seen again skips parsing and signature work until its exp. The entry carries the
community's `keys_version`: after any key change the old entries no longer match, and
`invalidate` drops them. Time rules and the mode are checked by the caller every time.
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


def token_digest(token: str) -> bytes:
    """Keys hold a digest, not the token, so the cache never holds a presentable credential index."""
    return hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=16).digest()


@dataclass(slots=True)
class Entry:
    """One verified token, and the enriched record's part derived from it for one configuration.

    The memo policy is this class's: an entry is made (`TokenCache.put`) without a memo, so a
    token seen once keeps nothing more; from its first hit on, `derived_for` / `keep` hold one
    `records.Derived` (mapping result and output JSON fragment), valid for the `Community`
    object it names only: a reloaded configuration is a new object, so a mapping or
    custom-field change is never served from an old one.
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
        self.hits = 0
        self.misses = 0

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

    def put(self, key: tuple[str, bytes], keys_version: str, verified: VerifiedToken) -> Entry:
        entry = self._entries[key] = Entry(keys_version, verified)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return entry

    def newest(self, count: int) -> list[tuple[tuple[str, bytes], Entry]]:
        """The `count` most recently used entries (a sample for estimating memory, DESIGN §7)."""
        return list(islice(reversed(self._entries.items()), count))

    def table_bytes(self) -> int:
        """The size of the table itself (its slots and links), without the keys and entries."""
        return sys.getsizeof(self._entries)

    def invalidate(self, community_id: str) -> int:
        """Drop a community's entries (its keys changed); returns how many went."""
        stale = [key for key in self._entries if key[0] == community_id]
        for key in stale:
            del self._entries[key]
        return len(stale)
