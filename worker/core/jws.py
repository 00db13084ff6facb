"""Compact JWS text (RFC 7515 §7.1): the one place that splits a token and decodes its segments.

V4 wants *canonical* base64url in every segment (RFC 7515 §2, RFC 4648 §3.5): the alphabet
`A–Z a–z 0–9 - _`, no padding, and the unused low bits of the last character zero. Only then
does one signature have exactly one token text; otherwise a token re-spelt (`…No` → `…Np`
decodes to the same bytes) would pass anything keyed on its text (C4, deny-lists, replays).

V5 is the header registry below (in the spirit of joserfc's): each header parameter the rule
names, whether it is required, forbidden or ignored, and the verdict when it is not as required.
"""

from __future__ import annotations

import binascii
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from operator import is_
from typing import Any, Final

from worker.core.jsontext import read_object
from worker.core.keys import ALGORITHMS, listed
from worker.core.reasons import Reason
from worker.core.verdict import Rejected, short

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
    """The JSON object (J1–J4, `jsontext.read_object`) a header or payload segment encodes.
    Read-only: a header's object is shared by every token with the same header segment."""
    raw = decode_segment(segment)
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    value = read_object(text)
    return value if type(value) is dict else None


#: The header segments whose reading is kept: a site's tokens share one header (its alg, kid
#: and typ), so a new token's header is read once per key, not once per token (1 µs of ~9).
SHARED_HEADERS: Final = 256

header_object: Final = functools.lru_cache(maxsize=SHARED_HEADERS)(segment_object)


# ---------------------------------------------------------------- V5: the header registry


class Use(StrEnum):
    REQUIRED = "required"  # present, not null, and (if it says so) an accepted value
    FORBIDDEN = "forbidden"  # absent: even `null` is refused
    IGNORED = "ignored"  # never read, whatever it holds (so it can never choose a key)


#: What a header gives for a parameter it does not have (one it has as `null` gives None).
_ABSENT: Final = object()


def _present(value: object) -> bool:
    return value is not None and value is not _ABSENT


@dataclass(frozen=True, slots=True)
class HeaderParameter:
    """How V5 treats one JOSE header parameter (RFC 7515 §4.1). `detail` is the rejection's,
    `{}` standing for the value found (shortened; None when absent)."""

    name: str
    use: Use
    reason: Reason = Reason.INVALID_HEADER
    detail: str = ""
    #: REQUIRED: the values that pass (never None or absent); by default any present one.
    accepts: Callable[[object], bool] = _present

    def admits(self) -> Callable[[object], bool]:
        """Whether the header's value (`_ABSENT` if missing) satisfies this parameter's rule."""
        if self.use is Use.FORBIDDEN:
            return partial(is_, _ABSENT)
        return self.accepts if self.use is Use.REQUIRED else bool  # IGNORED: never asked


#: V5, checked in this order (the first failure decides); parameters not listed are ignored too.
HEADER_PARAMETERS: Final = (
    HeaderParameter(
        "typ",
        Use.REQUIRED,
        Reason.INVALID_HEADER,
        "typ must be JWT, got {}",
        lambda typ: isinstance(typ, str) and typ.upper() == "JWT",
    ),
    HeaderParameter("crit", Use.FORBIDDEN, Reason.INVALID_HEADER, "crit header is not supported"),
    HeaderParameter("b64", Use.FORBIDDEN, Reason.INVALID_HEADER, "b64 header is not supported"),
    HeaderParameter(
        "alg",
        Use.REQUIRED,
        Reason.UNSUPPORTED_ALGORITHM,
        f"alg {{}} is not {listed(ALGORITHMS)}",
        ALGORITHMS.__contains__,  # exactly one of these strings: `none` is not (V5)
    ),
    HeaderParameter("kid", Use.REQUIRED, Reason.MISSING_KID, "token header has no kid"),  # its value: V6
    *(HeaderParameter(name, Use.IGNORED) for name in ("jku", "x5u", "jwk", "x5c")),
)
# (name, admits, reason, detail) of the parameters V5 checks, in order: the verdict's walk.
_CHECKED: Final = tuple(
    (p.name, p.admits(), p.reason, p.detail) for p in HEADER_PARAMETERS if p.use is not Use.IGNORED
)
# The same rules as one test for the common header, which passes them all (per token, so cheap).
_FORBIDDEN: Final = frozenset(p.name for p in HEADER_PARAMETERS if p.use is Use.FORBIDDEN)
_REQUIRED: Final = tuple((p.name, p.accepts) for p in HEADER_PARAMETERS if p.use is Use.REQUIRED)


def check_header(header: dict[Any, Any]) -> tuple[str, object] | Rejected:
    """V5 by `HEADER_PARAMETERS`: the token's alg and kid, or the first parameter's verdict."""
    if _FORBIDDEN.isdisjoint(header):
        for name, accepts in _REQUIRED:  # `accepts` refuses None: absent and null alike
            if not accepts(header.get(name)):
                break
        else:
            return header["alg"], header["kid"]
    for name, admits, reason, detail in _CHECKED:  # which rule fails first decides the verdict
        if not admits(header.get(name, _ABSENT)):
            return Rejected(reason, detail.format(short(header.get(name))))
    raise AssertionError("unreachable: a rule failed above")  # pragma: no cover
