"""Interoperability: tokens signed by Node's `jsonwebtoken` (npm, pinned in
package-lock.json) are accepted or refused exactly as DESIGN §3 says.

Needs node and npm; never skips: a machine without them fails here loudly, because CI must run it.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.node import node_packages
from worker.core.community import Community, prepare
from worker.core.contracts import EnrichedIdentity, Rejection
from worker.core.pipeline import process_event
from worker.devtools import examples
from worker.store.yaml_io import parse_yaml

HERE = Path(__file__).parent
SECRET = examples.HMAC_SECRET  # 24 ASCII characters: the HMAC key is these bytes
RECEIVED_AT = "2026-11-24T10:00:00Z"
NOW = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC).timestamp()
T0 = int(NOW)


@pytest.fixture(scope="session")
def node_signer() -> Path:
    """`npm ci` once when node_modules is missing; fail (never skip) without node or npm."""
    node_packages(HERE, "jsonwebtoken")
    return HERE / "sign.js"


def _pem(key: rsa.RSAPrivateKey, private: bool = False) -> str:
    if private:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="session")
def rsa_keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


@pytest.fixture(scope="session")
def communities(rsa_keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]) -> dict[str, Community]:
    config = {
        "communities": [
            {
                "id": "acme",
                "jwt_keys": [
                    {"kid": "acme_2026", "hmac_secret": SECRET},
                    {"kid": "acme_rsa", "rsa_public_key": _pem(rsa_keys[0])},
                ],
                "custom_fields": [{"key": "customer_id", "label": "Customer ID", "regex": "C[0-9]{6}"}],
                "mappings": [{"from": "extra_values.customer_id", "to": "custom_fields.customer_id"}],
            }
        ]
    }
    return prepare(parse_yaml(yaml.safe_dump(config)))


def _payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "uuid": "v-42",
        "firstname": "Ada",
        "email": "ada@example.org",
        "iat": T0 - 5,
        "exp": T0 + 7200,
        "extra_values": {"customer_id": "C123456", "visits": 3, "vip": True},
    }
    payload.update(overrides)
    return payload


@pytest.fixture(scope="session")
def node_tokens(node_signer: Path, rsa_keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]) -> dict[str, str]:
    good, attacker = (_pem(k, private=True) for k in rsa_keys)
    expired = _payload(exp=T0 - 10)
    specs: list[dict[str, Any]] = [
        {"name": "hs_valid", "alg": "HS256", "key": SECRET, "kid": "acme_2026", "payload": _payload()},
        {"name": "hs_expired", "alg": "HS256", "key": SECRET, "kid": "acme_2026", "payload": expired},
        {
            "name": "hs_too_soon",
            "alg": "HS256",
            "key": SECRET,
            "kid": "acme_2026",
            "payload": _payload(exp=T0 + 3589),
        },
        {"name": "hs_wrong_key", "alg": "HS256", "key": examples.OTHER_SECRET, "kid": "acme_2026",
         "payload": _payload()},
        {"name": "hs_no_kid", "alg": "HS256", "key": SECRET, "payload": _payload()},
        {"name": "rs_valid", "alg": "RS256", "key": good, "kid": "acme_rsa", "payload": _payload()},
        {"name": "rs_expired", "alg": "RS256", "key": good, "kid": "acme_rsa", "payload": expired},
        {"name": "rs_wrong_key", "alg": "RS256", "key": attacker, "kid": "acme_rsa", "payload": _payload()},
        {"name": "rs_no_kid", "alg": "RS256", "key": good, "payload": _payload()},
        {"name": "rs_as_hs_kid", "alg": "RS256", "key": good, "kid": "acme_2026", "payload": _payload()},
    ]  # fmt: skip
    result = subprocess.run(
        ["node", str(node_signer)],
        input=json.dumps({"tokens": specs}),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=HERE,
    )
    assert result.returncode == 0, result.stderr
    tokens: dict[str, str] = json.loads(result.stdout)
    assert set(tokens) == {s["name"] for s in specs}
    return tokens


EXPECTED = {
    "hs_valid": "accepted",
    "hs_expired": "token_expired",
    "hs_too_soon": "expiry_too_soon",
    "hs_wrong_key": "invalid_signature",
    "hs_no_kid": "missing_kid",
    "rs_valid": "accepted",
    "rs_expired": "token_expired",
    "rs_wrong_key": "invalid_signature",
    "rs_no_kid": "missing_kid",
    "rs_as_hs_kid": "algorithm_key_mismatch",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_node_jsonwebtoken_tokens_get_the_rule_verdict(
    name: str, node_tokens: dict[str, str], communities: dict[str, Community]
) -> None:
    value = json.dumps(
        {
            "event_id": name,
            "community_id": "acme",
            "received_at": RECEIVED_AT,
            "signed_identity": node_tokens[name],
        }
    ).encode()
    output = process_event(value, lookup=communities, now=NOW)
    record = json.loads(output.to_json())
    if EXPECTED[name] == "accepted":
        EnrichedIdentity.model_validate(record)
        assert record["verification"]["alg"] == name[:2].upper() + "256"
        assert record["identity"]["extra_values"] == {"customer_id": "C123456", "visits": "3", "vip": "true"}
        assert record["custom_fields"] == {"customer_id": "C123456"}
    else:
        Rejection.model_validate(record)
        assert record["reason"] == EXPECTED[name], record["detail"]
        assert record["action"] == "block"


def test_node_header_is_what_the_rules_expect(node_tokens: dict[str, str]) -> None:
    """jsonwebtoken writes typ JWT, the alg and the kid: the V5 shape, from another implementation."""
    import base64

    head = node_tokens["hs_valid"].split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    assert header == {"alg": "HS256", "typ": "JWT", "kid": "acme_2026"}
