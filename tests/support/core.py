"""Helpers for the verification-core tests (DESIGN §1–4, §7): keys, tokens, events, configs.

Tokens are built by hand (`make_token`) rather than with PyJWT so a test can put anything
in a header or payload, sign with any key, or break the structure on purpose.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import BaseModel

from worker.core.community import Community, Tombstone, prepare
from worker.core.contracts import EnrichedIdentity, Rejection
from worker.core.records import Output
from worker.devtools import examples
from worker.store.yaml_io import parse_yaml

RECEIVED_AT = "2026-11-24T10:00:00Z"
NOW = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC).timestamp()
T0 = int(NOW)
SECRET = examples.HMAC_SECRET
OTHER_SECRET = examples.OTHER_SECRET
ANON_SECRET = examples.THIRD_SECRET
HS_KID = examples.HS_KID
RS_KID = examples.RS_KID
OTHER_KID = "other_2026"
#: The HMAC secrets of `base_config`'s communities (acme, other, anon): no output may hold one.
HMAC_SECRETS = (SECRET, OTHER_SECRET, ANON_SECRET)

#: The `run` fixture of tests/core: one value through `process_event`, the validated record.
Runner = Callable[..., dict[str, Any]]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


@functools.cache
def rsa_private(bits: int = 2048, n: int = 0) -> rsa.RSAPrivateKey:
    """Deterministic per (bits, n) within one run: key generation is slow, so it is cached.
    The default is the example community's key (worker.devtools.examples)."""
    if (bits, n) == (2048, 0):
        return examples.rsa_key()
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def public_pem(key: rsa.RSAPrivateKey, pkcs1: bool = False) -> str:
    fmt = serialization.PublicFormat.PKCS1 if pkcs1 else serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(serialization.Encoding.PEM, fmt).decode("ascii")


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def sign_hs256(signing_input: bytes, key: bytes) -> bytes:
    return hmac.new(key, signing_input, hashlib.sha256).digest()


def sign_rs256(signing_input: bytes, key: rsa.RSAPrivateKey) -> bytes:
    return key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())


def make_token(
    payload: dict[str, Any] | None = None,
    *,
    kid: Any = HS_KID,
    alg: str = "HS256",
    key: bytes | rsa.RSAPrivateKey | None = None,
    header: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    sign_as: str | None = None,
    header_text: str | None = None,
    payload_text: str | None = None,
) -> str:
    """A compact JWS. Defaults: typ JWT, alg HS256, kid acme_2026, signed with SECRET.

    `header` entries override/extend the header; `drop` removes header fields; `sign_as`
    chooses the signing algorithm independently of the `alg` header (for confusion attacks).
    `header_text` / `payload_text` give a segment's JSON text as is (what `json.dumps` cannot
    write: a 20 000-digit number, a repeated member name).
    """
    head: dict[str, Any] = {"typ": "JWT", "alg": alg, "kid": kid}
    head.update(header or {})
    for name in drop:
        head.pop(name, None)
    body = good_claims() if payload is None else payload
    head_segment = b64json(head) if header_text is None else b64url(header_text.encode())
    body_segment = b64json(body) if payload_text is None else b64url(payload_text.encode())
    signing_input = f"{head_segment}.{body_segment}".encode("ascii")
    how = sign_as or alg
    if how == "RS256":
        sig = sign_rs256(signing_input, key if isinstance(key, rsa.RSAPrivateKey) else rsa_private())
    elif how == "none":
        sig = b""
    else:
        sig = sign_hs256(signing_input, key if isinstance(key, bytes) else SECRET.encode("ascii"))
    return f"{signing_input.decode('ascii')}.{b64url(sig)}"


def other_community_token() -> str:
    """A good token of `base_config`'s community `other`: its kid, signed with its secret."""
    return make_token(kid=OTHER_KID, key=OTHER_SECRET.encode())


def good_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "uuid": "v-42",
        "firstname": "Ada",
        "lastname": "Lovelace",
        "company": "Analytical Engines",
        "email": "ada@example.org",
        "iat": T0 - 5,
        "exp": T0 + 7200,
        "extra_values": {"customer_id": "C123456", "phone": "+33600000000"},
    }
    for name, value in overrides.items():
        if value is ...:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def acme_config(**overrides: Any) -> dict[str, Any]:
    """The example community (worker.devtools.examples) with a second field `plan`, the phone mapped
    instead of the mobile; `overrides` replace its entries."""
    community = examples.community(
        rsa_public_pem=public_pem(rsa_private()),
        custom_fields=(examples.CUSTOMER_ID_FIELD, {"key": "plan", "label": "Plan"}),
        mappings=(
            examples.CUSTOMER_ID_MAPPING,
            examples.NOTES_MAPPING,
            {"from": "extra_values.phone", "to": "identity_group.mobile_phones"},
        ),
    )
    community.update(overrides)
    return community


def base_config() -> dict[str, Any]:
    return {
        "communities": [
            acme_config(),
            {"id": "other", "jwt_keys": [{"kid": OTHER_KID, "hmac_secret": OTHER_SECRET}]},
            {
                "id": "anon",
                "signed_identities": "reject",
                "jwt_keys": [{"kid": "anon_key", "hmac_secret": ANON_SECRET}],
                "custom_fields": [{"key": "plan", "label": "Plan"}],
                "mappings": [{"from": "extra_values.plan", "to": "custom_fields.plan"}],
            },
        ]
    }


def build(config: dict[str, Any]) -> dict[str, Community]:
    import yaml

    return prepare(parse_yaml(yaml.safe_dump(config)))


def acme_lookup(**overrides: Any) -> dict[str, Community]:
    """The example community alone (`acme_config(**overrides)`), prepared as the worker holds it."""
    return build({"communities": [acme_config(**overrides)]})


def acme_with_tombstone() -> Community:
    """The example community with the L3 tombstone of `acme_2025`, removed three days before T0."""
    gone = Tombstone("acme_2025", "HS256", "sha256:0123456789abcdef", T0 - 86400 * 3)
    return dataclasses.replace(acme_lookup()["acme"], tombstones={"acme_2025": gone})


@functools.cache
def base_communities() -> dict[str, Community]:
    return build(base_config())


def event(
    token: str | None = None,
    *,
    identity: dict[str, Any] | None = None,
    community_id: str = "acme",
    received_at: str = RECEIVED_AT,
    event_id: str = "e-1",
    **extra: Any,
) -> bytes:
    """A raw event (DESIGN §2.1): signed when `token` is given, else unsigned with `identity`."""
    value: dict[str, Any] = {"event_id": event_id, "community_id": community_id, "received_at": received_at}
    if token is not None:
        value["signed_identity"] = token
    if identity is not None:
        value["identity"] = identity
    value["gateway"] = {"name": "gw-eu-1"}
    value.update(extra)
    return json.dumps(value).encode("utf-8")


def strict_json(data: bytes) -> Any:
    """Read JSON as strict readers do (orjson, like jq and serde_json): RFC 8259, UTF-8, and no
    unpaired surrogate, escaped or not (J2). Raises on anything else."""
    return orjson.loads(data)


def validate_output(output: Output) -> dict[str, Any]:
    """The output's JSON parses with a strict reader (J2) and validates against its contract
    model; returns the dict."""
    record: dict[str, Any] = strict_json(output.to_json())
    # The JSON assembled with the record (cached tokens: from a fragment) is the record, byte for
    # byte, as `json` writes it in UTF-8 (non-ASCII characters as themselves, RFC 8259).
    written = json.dumps(output.record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert output.to_json() == written
    assert record["outcome"] == output.outcome.value
    if record["outcome"] == "enriched":
        in_contract(record, EnrichedIdentity)
    elif record["outcome"] == "rejected":
        in_contract(record, Rejection)
        assert output.reason is not None and record["reason"] == output.reason.value
    else:
        raise AssertionError(f"unexpected outcome {record['outcome']}")
    return record


#: K9's fields (`core/fitting.py`): only on an output that could not be written as it is.
RESHAPING_FIELDS = ("key_derived", "headers_dropped", "raw_truncated", "raw_bytes", "raw_sha256")


def in_contract(record: dict[str, Any], model: type[BaseModel]) -> None:
    """The record is its contract model's (DESIGN §2.2–§2.4, `worker.core.contracts`, the one
    definition): it validates, and has the model's fields in the model's order (the
    hand-built records and JSON are checked against it), K9's reshaping fields aside."""
    model.model_validate(record)
    fields = [field.alias or name for name, field in model.model_fields.items()]
    assert [name for name in record if name not in RESHAPING_FIELDS] == [
        name for name in fields if name not in RESHAPING_FIELDS
    ]
