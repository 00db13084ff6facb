"""The secured stack of tests/secure: `deploy/local/stack up --secure` in a folder of
its own, its listeners as `Bootstrap`s and its TLS files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.support import stack
from tests.support.kafka import Bootstrap

STACK_UP_TIMEOUT_S = 600


@dataclass(frozen=True)
class SecureStack:
    folder: Path
    sasl_ssl: Bootstrap  # SCRAM-SHA-512 user, CA
    ssl: Bootstrap  # client certificate (encrypted key), CA
    plain: str  # the same broker's PLAINTEXT listener
    database_url: str  # verify-full, sslrootcert, sslcert, sslkey

    @property
    def tls(self) -> Path:
        return self.folder / "tls"


def profile(path: Path) -> dict[str, str]:
    return stack._parse_exports(path.read_text())
