"""Hiding secrets in text that is about to be shown or logged ("Secrets stay secret", DESIGN §7).

Two kinds of secret reach messages by accident: data quoted by an error (a token, an HMAC
secret: `redact`) and a password inside a URL or DSN (`redact_dsn`). Both work on any text,
a whole DSN or a log line that quotes one, so each is written once and used everywhere:
settings (`Settings.redacted_dsn`), logs (`ops.logging.scrub`) and dead letters. Pure.
"""

from __future__ import annotations

import re
from typing import Final

_TOKEN_LIKE: Final = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
_HEX_SECRET_LIKE: Final = re.compile(r"(?<![0-9a-f])[0-9a-f]{24}(?![0-9a-f])")

#: `scheme://user:PASSWORD@host`: the password runs to the last `@` that is followed by a host
#: (no `@`, `/`, `?`, `#` or space before the host ends), so a password holding an unencoded
#: `@` or `/` is still hidden whole. Hiding too much is safe, hiding too little is not.
_USERINFO_PASSWORD: Final = re.compile(r"(://[^\s:/?#@]*:)\S*?@(?=[^\s@/?#]*(?:[/?#\s]|$))")
#: DSN query parameters that hold a secret (libpq and asyncpg read both from the URL).
_SECRET_PARAMETER: Final = re.compile(r"(?i)([?&](?:ssl)?password=)[^&#\s]*")


def redact(text: str) -> str:
    """Error text of a bug may quote data: strip anything shaped like a token or an HMAC secret."""
    return _HEX_SECRET_LIKE.sub("<redacted>", _TOKEN_LIKE.sub("<token>", text))


def redact_dsn(text: str) -> str:
    """Every URL/DSN in `text` with its password and secret query parameters replaced by `***`.

    postgresql://user:secret@host/db?sslpassword=x → postgresql://user:***@host/db?sslpassword=***.
    TLS parameters (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) are paths and modes, kept;
    everything else is kept as written.
    """
    return _SECRET_PARAMETER.sub(r"\1***", _USERINFO_PASSWORD.sub(r"\1***@", text))
