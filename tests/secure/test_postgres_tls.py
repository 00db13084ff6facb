"""PostgreSQL over TLS: `DATABASE_URL` with `sslmode=verify-full`, `sslrootcert` and a
client certificate works for the worker's store connection and the admin commands (the flows in
test_secure_flows add LISTEN/NOTIFY and `keys remove`); a server whose certificate does not match
the host, or is signed by a CA we do not trust, is refused: one line, a non-zero exit, at once.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.secure.test_fail_fast import FAST_S, other_ca
from tests.support.secure import SecureStack
from tests.support.worker import CLI, Store
from worker.store.db import StoreMisconfigured, connect

pytestmark = pytest.mark.integration


async def test_verify_full_connects_over_tls_with_the_client_certificate(secure_store: Store) -> None:
    assert "sslmode=verify-full" in secure_store.url
    conn = await connect(secure_store.url)
    try:
        ssl, client_dn = await conn.fetchrow(
            "SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
    finally:
        await conn.close()
    assert ssl is True
    assert client_dn == "/CN=identity"  # logged in by certificate (pg_hba: hostssl … cert)


def refused_url(case: str, url: str, tmp_path: Path) -> tuple[str, str]:
    if case == "hostname_mismatch":  # the server's certificate names localhost only
        return url.replace("@localhost:", "@127.0.0.1:"), "hostname verification failed"
    ca = str(next(part for part in url.split("&") if part.startswith("sslrootcert=")).split("=", 1)[1])
    return url.replace(ca, str(other_ca(tmp_path))), "the server's certificate is not trusted"


@pytest.mark.parametrize("case", ["hostname_mismatch", "unknown_ca"])
async def test_a_server_certificate_that_does_not_match_is_refused(
    case: str, secure_store: Store, tmp_path: Path
) -> None:
    url, check = refused_url(case, secure_store.url, tmp_path)
    with pytest.raises(StoreMisconfigured) as refused:
        await connect(url)
    assert check in refused.value.message
    for command, code in ((["keys", "list", secure_store.acme], 1), (["run", "--metrics-port", "0"], 3)):
        started = time.monotonic()
        result = subprocess.run(
            [*CLI, *command],
            env={**os.environ, "DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == code, result.stderr
        assert time.monotonic() - started < FAST_S, "retried instead of failing fast"
        errors = [line for line in result.stderr.splitlines() if not line.startswith("{")]
        assert len(errors) == 1 and check in errors[0], result.stderr


def test_the_secure_stack_refuses_plaintext_connections(secure_stack: SecureStack) -> None:
    """The server really requires TLS: the same URL without it is refused (pg_hba: hostssl only)."""
    plain = secure_stack.database_url.split("?", 1)[0] + "?sslmode=disable"
    result = subprocess.run(
        [*CLI, "db", "migrate"], env={**os.environ, "DATABASE_URL": plain}, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "refused the login" in result.stderr
