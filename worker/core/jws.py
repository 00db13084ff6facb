"""Compact JWS text (RFC 7515 §7.1): the one place that splits a token and decodes its segments.

V4 wants *canonical* base64url in every segment (RFC 7515 §2, RFC 4648 §3.5): the alphabet
`A–Z a–z 0–9 - _`, no padding, and the unused low bits of the last character zero. Only then
does one signature have exactly one token text; otherwise a token re-spelt (`…No` → `…Np`
decodes to the same bytes) would pass anything keyed on its text (C4, deny-lists, replays).
"""

from __future__ import annotations

import binascii
import re
from typing import Any, Final

from worker.core.jsontext import read_object

#: Three segments of the base64url alphabet; the signature may be empty (an unsigned JWS).
COMPACT: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

# base64url to base64; the standard alphabet's own `+ / =` become `!`, which strict decoding refuses.
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/!!!")
_PADDING = (b"", b"", b"==", b"=")  # by len % 4; a remainder of 1 is never base64
# The last character's alphabet positions whose unused low bits are zero: 4 unused bits when
# the segment ends with one byte (len % 4 == 2), 2 when it ends with two (len % 4 == 3).
_CANONICAL_LAST = ("", "", "AQgw", "AEIMQUYcgkosw048")


def decode_segment(segment: str) -> bytes | None:
    """The bytes of one canonical base64url segment, or None if it is not one (V4)."""
    rest = len(segment) % 4
    if rest == 1 or (rest and segment[-1] not in _CANONICAL_LAST[rest]):
        return None
    try:
        data = segment.encode("ascii").translate(_TO_STANDARD) + _PADDING[rest]
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        return None


def segment_object(segment: str) -> dict[Any, Any] | None:
    """The JSON object (J1–J4, `jsontext.read_object`) a header or payload segment encodes."""
    raw = decode_segment(segment)
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    value = read_object(text)
    return value if type(value) is dict else None
