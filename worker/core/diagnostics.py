"""Integrator diagnostics (DESIGN §11, L4): after the verdict, the usual mistakes behind it. Pure.

`token verify` and the admin API's token check call `diagnose` with the reason of the verdict
they already have (None: accepted); it never changes a verdict. The pipeline calls `noted` on
a rejection whose reason may have a finding (`DIAGNOSED`), so the stored rejection's `detail`
— what Health and `report` show — carries the same findings as `token verify`'s notes. Each
finding says what the website most likely did and what to do instead; none repeats a secret or
the token.

- `hex_decoded_secret`: the signature verifies with the 24-character secret hex-decoded into
  12 bytes (the HMAC key is the 24 ASCII characters themselves, DESIGN §1).
- `standard_base64`: segments in standard base64 (`+`, `/`) or padded (`=`) where JWS wants
  unpadded base64url (RFC 7515 §2), and the signature would verify once that is fixed.
- `exp_in_milliseconds`: `exp` read as milliseconds is a plausible time (NumericDate is seconds).
- `below_min_validity`: by how many seconds the token misses the minimum validity (V9).
- `removed_key`: the kid is a removed key's (tombstone), with the keys that remain.
- `surrounding_whitespace`, `bearer_prefix`: the text around the token that made it unreadable
  (a trailing newline, an HTTP `Bearer ` scheme): V4 judges the exact text, nothing is trimmed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Final

from worker.core.community import Community
from worker.core.jsontext import integer_of, read_object
from worker.core.keys import HMAC_SECRET, JwtKey
from worker.core.reasons import Reason
from worker.core.times import format_time
from worker.core.verdict import Rejected, seconds
from worker.core.verify import CompactToken, parse_compact

#: `exp` / 1000 within this many seconds of the clock counts as "looks like milliseconds".
MILLISECONDS_PLAUSIBLE_SECONDS: Final = 10 * 366 * 86400
#: The reasons `noted` adds findings to (the hot path looks no further for the others).
DIAGNOSED: Final = frozenset(
    {
        Reason.MALFORMED_TOKEN,
        Reason.INVALID_SIGNATURE,
        Reason.INVALID_EXP,
        Reason.EXPIRY_TOO_SOON,
    }  # not unknown_kid: V6's detail already names a removed key and its date (L3)
)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One likely mistake: a stable code (for the API) and a sentence for the integrator."""

    code: str
    message: str


def diagnose(
    token: str,
    community: Community,
    reason: Reason | None,
    *,
    received_at: float,
    now: float,
    max_token_bytes: int,
) -> list[Diagnostic]:
    """The likely mistakes behind a verdict of `reason` (None: accepted) for `token` presented
    to `community`; `received_at` and `now` are epoch seconds, as for the verdict."""
    found: list[Diagnostic] = []
    compact = parse_compact(token, max_token_bytes)
    if isinstance(compact, Rejected):
        if reason is Reason.MALFORMED_TOKEN:
            found += _framing(token) + _base64_mistake(token, community, max_token_bytes)
        return found
    if reason is Reason.INVALID_SIGNATURE:
        key = _key(community, compact.header)
        if key is not None and key.alg == HMAC_SECRET.alg and _hex_decoded_verifies(key, compact):
            found.append(
                Diagnostic(
                    "hex_decoded_secret",
                    f"the signature verifies with key {key.kid!r}'s secret hex-decoded into 12 bytes: "
                    "the HMAC key is the 24 characters themselves, as ASCII text; sign with the secret "
                    "string as it is, without decoding it",
                )
            )
    found += _milliseconds(compact.payload.get("exp"), now)
    if reason is Reason.EXPIRY_TOO_SOON:
        exp = integer_of(compact.payload.get("exp"))
        if exp is not None:
            short_by = received_at + community.min_validity_seconds - (exp + community.leeway_seconds)
            found.append(
                Diagnostic(
                    "below_min_validity",
                    f"the token expires {seconds(short_by)} s before the minimum validity "
                    f"({community.min_validity_seconds} s after the event, leeway "
                    f"{community.leeway_seconds} s): set exp at least "
                    f"{community.min_validity_seconds} s after signing",
                )
            )
    if reason is Reason.UNKNOWN_KID:
        kid = compact.header.get("kid")
        gone = community.tombstones.get(kid) if isinstance(kid, str) else None
        if gone is not None:
            remaining = ", ".join(repr(k) for k in sorted(community.keys)) or "none"
            found.append(
                Diagnostic(
                    "removed_key",
                    f"key {gone.kid!r} ({gone.alg}, {gone.fingerprint}) was removed on "
                    f"{format_time(gone.removed_at)}; the website still signs with it: move it to "
                    f"one of the community's keys ({remaining})",
                )
            )
    return found


def noted(
    verdict: Rejected,
    token: str,
    community: Community,
    *,
    received_at: float,
    now: float,
    max_token_bytes: int,
) -> Rejected:
    """`verdict` with `diagnose`'s findings appended to its detail ("; note: …"), so the stored
    rejection says what `token verify` says (L4); the reason and the key are unchanged."""
    if verdict.reason not in DIAGNOSED:
        return verdict
    found = diagnose(
        token, community, verdict.reason, received_at=received_at, now=now, max_token_bytes=max_token_bytes
    )
    if not found:
        return verdict
    notes = "".join(f"; note: {finding.message}" for finding in found)
    return Rejected(verdict.reason, verdict.detail + notes, verdict.kid)


def _framing(token: str) -> list[Diagnostic]:
    """What surrounds the token: whitespace (a textarea's or a template's newline) and the HTTP
    `Bearer ` scheme are not part of a compact JWS (V4); only whitespace characters are quoted."""
    found: list[Diagnostic] = []
    stripped = token.strip()
    if stripped != token:
        before, after = token[: len(token) - len(token.lstrip())], token[len(token.rstrip()) :]
        where = " and ".join(
            f"{side} it ({text!r})" for side, text in (("before", before), ("after", after)) if text
        )
        found.append(
            Diagnostic(
                "surrounding_whitespace",
                f"the token has whitespace {where}: the worker judges the exact text, so the token "
                "is unreadable; send it without the whitespace (trim it where the website builds "
                "the identity)",
            )
        )
    if stripped[:7].lower() == "bearer ":
        found.append(
            Diagnostic(
                "bearer_prefix",
                "the token starts with 'Bearer ', the scheme of an HTTP Authorization header, which is "
                "not part of the JWT: send the three dot-separated segments alone",
            )
        )
    return found


def _key(community: Community, header: dict[str, Any]) -> JwtKey | None:
    kid = header.get("kid")
    return community.keys.get(kid) if isinstance(kid, str) else None


def _hex_decoded_verifies(key: JwtKey, compact: CompactToken) -> bool:
    secret = key.prepared  # HS256: the 24 ASCII bytes of the secret
    if not isinstance(secret, bytes):
        return False
    try:
        decoded = bytes.fromhex(secret.decode("ascii"))
    except ValueError:
        return False
    expected = hmac.new(decoded, compact.signing_input, hashlib.sha256).digest()
    return hmac.compare_digest(expected, compact.signature)


def _milliseconds(raw: object, now: float) -> list[Diagnostic]:
    exp = integer_of(raw)
    if exp is None or exp < 100 * MILLISECONDS_PLAUSIBLE_SECONDS:
        return []
    as_seconds = exp / 1000
    if abs(as_seconds - now) > MILLISECONDS_PLAUSIBLE_SECONDS:
        return []
    return [
        Diagnostic(
            "exp_in_milliseconds",
            f"exp {exp} looks like milliseconds ({format_time(as_seconds)} if divided by 1000): "
            "exp is a NumericDate in seconds since 1970 (RFC 7519 §2); e.g. Math.floor(Date.now() / 1000)",
        )
    ]


def lenient_b64(segment: str) -> bytes | None:
    """Standard or URL-safe base64, padded or not: what a lenient site may have written."""
    text = segment.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _base64_mistake(token: str, community: Community, max_token_bytes: int) -> list[Diagnostic]:
    """V4 refused the token: was it standard base64 or padding, and is the signature good?"""
    parts = token.split(".")
    if len(parts) != 3 or not any(c in token for c in "+/="):
        return []
    decoded = [lenient_b64(part) for part in parts]
    if any(d is None for d in decoded):
        return []
    head, body, signature = (d for d in decoded if d is not None)
    try:
        header = read_object(head.decode("utf-8"))
    except UnicodeDecodeError:
        return []
    if type(header) is not dict:
        return []
    fixed = f"{_b64url(head)}.{_b64url(body)}.{_b64url(signature)}"
    converted = parse_compact(fixed, max_token_bytes)
    key = _key(community, header)
    what = "standard base64 ('+', '/') or padding ('=')"
    advice = "JWS segments are base64url without padding (RFC 7515 §2): use '-' and '_' and drop '='"
    if key is None or key.alg != header.get("alg") or isinstance(converted, Rejected):
        return [Diagnostic("standard_base64", f"the token uses {what}; {advice}")]
    if key.verifies(converted.signing_input, converted.signature):
        return [
            Diagnostic(
                "standard_base64",
                f"the token uses {what}; converted to base64url its signature verifies with key "
                f"{key.kid!r}: {advice}",
            )
        ]
    as_sent = f"{parts[0]}.{parts[1]}".encode()
    if key.verifies(as_sent, signature):
        return [
            Diagnostic(
                "standard_base64",
                f"the token uses {what}, and its signature (key {key.kid!r}) covers that text: "
                f"{advice}, then sign the base64url text",
            )
        ]
    return [Diagnostic("standard_base64", f"the token uses {what}; {advice}")]
