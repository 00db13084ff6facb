"""Custom-field regexes (DESIGN §1, M4): RE2 only, compiled once, asked one question.

A community's `regex` is validated with its spec (`core/config.py`) and compiled again for the
prepared form (`core/community.py`); both use `compile_regex`. RE2 matches in linear time
whatever the pattern, so no configuration can make a worker slow.
"""

from __future__ import annotations

import functools

import re2
from re2 import _re2

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # our one-line error replaces RE2's own stderr noise


class WholeMatch:
    """A compiled RE2 pattern that answers one question: does it match the whole value (M4)?

    google-re2's Python `fullmatch` builds a match object and maps byte offsets back to
    characters in Python — about 3.8 µs a call, ~15 % of a worker's time per event. Asking the
    compiled program directly, anchored at both ends over the UTF-8 bytes, is the same match
    (RE2 works on UTF-8) at about 0.7 µs; tests hold it equal to `re2.fullmatch`. A value
    holding a lone surrogate (JSON allows `\\udc80`) has no UTF-8 form: it matches nothing,
    where `re2.fullmatch` raised (a dead letter instead of M4's `regex_mismatch`).
    """

    __slots__ = ("_program", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._program = re2.compile(pattern, _RE2_OPTIONS)._regexp

    def __call__(self, value: str) -> bool:
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate is no text a pattern can describe
            return False
        return bool(self._program.Match(_ANCHOR_BOTH, data, 0, len(data))[0][0] >= 0)


_ANCHOR_BOTH = _re2.RE2.Anchor.ANCHOR_BOTH


#: Distinct patterns whose compiled program is kept for sharing (T3); beyond it, the least
#: recently asked is compiled again when next asked (the communities holding it keep theirs).
SHARED_PATTERNS = 16_384


@functools.lru_cache(maxsize=SHARED_PATTERNS)
def compile_regex(pattern: str) -> WholeMatch:
    """RE2 only: linear-time matching whatever the pattern (M4). ValueError naming RE2's
    objection when it refuses the syntax (the length limit is the spec's: `MAX_REGEX_CHARS`).

    T3: one program per distinct pattern, shared by every community and every read that asks
    for it (100 000 communities with the same `C[0-9]{6}` hold one RE2 program, not 100 000;
    a `WholeMatch` is immutable, so sharing it cannot leak one community's state into another).
    """
    try:
        return WholeMatch(pattern)
    except re2.error as exc:
        why = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(f"regex is not valid RE2 syntax: {why}") from None
