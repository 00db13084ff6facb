"""How much memory the verified-token cache holds (C4), for `/metrics` (DESIGN §7).

Measuring every entry on each scrape would walk 65,536 entries on the event loop; instead the
deep size of a sample of the most recently used entries is scaled by the entry count, plus the
table itself. Objects an entry shares with the rest of the process are not counted: the
community configuration an output fragment was derived with (`Derived.community`, counted by
the configuration, not the cache), classes, and anything seen before in the same walk.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterable
from types import FunctionType, ModuleType
from typing import Final

from worker.core.community import Community
from worker.core.tokencache import TokenCache

#: Entries measured per estimate: enough for a stable mean, cheap on each scrape (~1 ms).
SAMPLE: Final = 64
_SHARED: Final = (type, ModuleType, FunctionType, Community)


def deep_size(roots: Iterable[object]) -> int:
    """Bytes of `roots` and all they reference, each object once, shared ones excluded."""
    seen: set[int] = set()
    pending = [root for root in roots if not isinstance(root, _SHARED)]
    total = 0
    while pending:
        obj = pending.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        pending.extend(ref for ref in gc.get_referents(obj) if not isinstance(ref, _SHARED))
    return total


def token_cache_bytes(cache: TokenCache, sample: int = SAMPLE) -> float:
    """Estimated bytes of `cache`: the table plus its entries (keys and values), by sampling."""
    entries = cache.newest(sample)
    if not entries:
        return float(cache.table_bytes())
    per_entry = deep_size(entries) / len(entries)  # what entries share (an alg's str) counts once
    return cache.table_bytes() + per_entry * len(cache)
