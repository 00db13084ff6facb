"""The configuration service under test: `identity-worker admin serve` as a real
process on a free port, over a migrated database of its own on the stack's PostgreSQL.

Every test starts from the same state (`seed`): community `acme` (require, key `k1`, a
custom field and a mapping), community `shop` (require, key `s1`), and four tokens:
`platform`, `acme` (community acme), `shop` (community shop), `revoked` (acme, revoked).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
from cryptography.hazmat.primitives import serialization

from tests.support.ports import free_port
from tests.support.processes import terminate
from tests.support.store import run_async, run_sql
from worker.core.config import CommunitySpec, validate_spec
from worker.devtools import examples
from worker.store import api_tokens
from worker.store import repository as repo

IDENTITY_WORKER = str(Path(sys.executable).with_name("identity-worker"))
SECRET = examples.HMAC_SECRET
SECRET_2 = examples.OTHER_SECRET
SHOP_SECRET = examples.THIRD_SECRET
RSA_PRIVATE = examples.rsa_key()
RSA_PUBLIC_PEM = examples.public_pem()
RSA_PRIVATE_PEM = RSA_PRIVATE.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
#: The base64 body of the public key: what would show if the PEM leaked anywhere.
RSA_PUBLIC_BODY = "".join(RSA_PUBLIC_PEM.strip().splitlines()[1:-1])


def mark_used(url: str, community_id: str, kid: str, uses: int, seconds_ago: int = 60) -> None:
    """As a worker's usage flush would (L1): `kid` verified `uses` tokens, the last `seconds_ago`."""
    run_sql(
        url,
        "WITH t AS (INSERT INTO key_usage_total (community_id, kid, verified, last_verified_at) "
        "VALUES ($1, $2, $3, now() - make_interval(secs => $4))) "
        "INSERT INTO key_usage_hourly (community_id, kid, hour, verified) "
        "VALUES ($1, $2, date_trunc('hour', now() - make_interval(secs => $4)), $3)",
        community_id,
        kid,
        uses,
        float(seconds_ago),
    )


def add_health(url: str, community_id: str, reason: str, events: int, minutes_ago: int) -> None:
    """As a worker's flush would (L5): `events` rejections for `reason` `minutes_ago`."""
    run_sql(
        url,
        "INSERT INTO integration_health_minute (community_id, minute, outcome, reason, events, "
        "last_detail, last_at) VALUES ($1, date_trunc('minute', now() - make_interval(mins => $4)), "
        "'rejected', $2, $3, 'detail of ' || $2, now() - make_interval(mins => $4))",
        community_id,
        reason,
        events,
        minutes_ago,
    )


def hs256(secret: str, kid: str, *, ttl: int = 7200, **claims: Any) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns about 24-byte HMAC keys (DESIGN §1 fixes them)
        now = int(time.time())
        return jwt.encode(
            {"uuid": "visitor-1", "iat": now, "exp": now + ttl, **claims},
            secret,
            algorithm="HS256",
            headers={"kid": kid, "typ": "JWT"},
        )


@dataclass
class Service:
    """A running `admin serve` and its database."""

    url: str
    database_url: str
    log: Path
    process: subprocess.Popen[bytes]
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, who: str | None) -> httpx.Client:
        """An HTTP client sending `who`'s token (None: no token; any unknown name: that text)."""
        headers = {}
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens.get(who, who)}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def console(self, who: str) -> httpx.Client:
        """A browser-like client signed in to the console as `who` (A8: it holds a session
        cookie, never the token)."""
        answer = httpx.post(f"{self.url}/signin", data={"token": self.tokens[who]}, timeout=30)
        assert answer.status_code == 303, answer.text
        return httpx.Client(base_url=self.url, cookies=answer.cookies, timeout=30)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        terminate(self.process, 30)


def start_service(database_url: str, log: Path, *, env: dict[str, str] | None = None) -> Service:
    port = free_port()
    handle = log.open("wb")
    process = subprocess.Popen(
        [IDENTITY_WORKER, "admin", "serve", "--port", str(port)],
        env={**os.environ, **(env or {}), "DATABASE_URL": database_url},
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    service = Service(f"http://127.0.0.1:{port}", database_url, log, process)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise AssertionError(f"admin serve exited with {process.returncode}: {service.log_text()}")
        try:
            if httpx.get(f"{service.url}/api/v1/openapi.json", timeout=2).status_code == 200:
                return service
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            service.stop()
            raise AssertionError(f"admin serve did not answer within 60 s: {service.log_text()}")
        time.sleep(0.1)


SEED = {
    "acme": {
        "id": "acme",
        "signed_identities": "require",
        "jwt_keys": [{"kid": "k1", "hmac_secret": SECRET}],
        "custom_fields": [{"key": "customer_id", "label": "Customer ID", "regex": "C[0-9]{6}"}],
        "mappings": [{"from": "extra_values.customer_id", "to": "custom_fields.customer_id"}],
    },
    "shop": {
        "id": "shop",
        "signed_identities": "require",
        "jwt_keys": [{"kid": "s1", "hmac_secret": SHOP_SECRET}],
    },
}


def seed(service: Service) -> None:
    """Empty the service's database, then write the state every test starts from."""

    async def go() -> dict[str, str]:
        conn = await asyncpg.connect(service.database_url)
        try:
            await conn.execute(
                "TRUNCATE communities, api_tokens, audit_log, key_usage_total, key_usage_hourly, "
                "integration_health_minute "
                "RESTART IDENTITY CASCADE"
            )
            async with conn.transaction():
                for data in SEED.values():
                    await repo.add_community(conn, validate_spec(CommunitySpec, data))
                tokens = {}
                for name, scope in (
                    ("platform", None),
                    ("acme", "acme"),
                    ("shop", "shop"),
                    ("revoked", "acme"),
                ):
                    tokens[name], _ = await api_tokens.create(conn, name, scope, actor="test seed")
                await api_tokens.revoke(conn, "revoked", actor="test seed")
            await conn.execute("TRUNCATE audit_log RESTART IDENTITY")
            return tokens
        finally:
            await conn.close()

    service.tokens = run_async(go)


def snapshot(database_url: str) -> str:
    """Everything a request could change, as one text: configuration rows and the audit trail."""
    parts = []
    for table, order in (
        ("communities", "id"),
        ("jwt_keys", "community_id, kid"),
        ("custom_fields", "community_id, key"),
        ("mappings", "community_id, position"),
        ("audit_log", "id"),
    ):
        rows = run_sql(database_url, f"SELECT * FROM {table} ORDER BY {order}")
        parts.append(json.dumps([dict(r) for r in rows], default=str, sort_keys=True))
    return "\n".join(parts)


Request = tuple[str, str, dict[str, Any] | None]
