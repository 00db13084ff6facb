"""The example community, written once for `make demo`, `make admin`, the benchmarks and the tests.

`acme` requires signed identities (DESIGN §1, §5): an HS256 key `acme_2026` and an RS256 key
`acme_rsa`, a custom field `customer_id` (regex `C[0-9]{6}`) and three mappings (M1–M6);
`openshop` takes unsigned identities only (`signed_identities: reject`). Tests and benchmarks
that need another shape (other key ids, fewer mappings, a setting) pass it to `community`.

The secrets are example values of the format DESIGN §1 fixes (24 characters 0-9a-f); real
ones come from the website's operator. The RSA key is generated once per process.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any, Final

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

COMMUNITY_ID: Final = "acme"
UNSIGNED_COMMUNITY_ID: Final = "openshop"
HS_KID: Final = "acme_2026"
RS_KID: Final = "acme_rsa"
HMAC_SECRET: Final = "0123456789abcdef01234567"
#: A second valid secret: a rotated-in key, another community's, or the wrong one.
OTHER_SECRET: Final = "fedcba9876543210fedcba98"
#: A third valid secret, for a third key or community.
THIRD_SECRET: Final = "00112233445566778899aabb"

CUSTOMER_ID_FIELD: Final[Mapping[str, str]] = {
    "key": "customer_id",
    "label": "Customer ID",
    "regex": "C[0-9]{6}",
}
CUSTOMER_ID_MAPPING: Final[Mapping[str, str]] = {
    "from": "extra_values.customer_id",
    "to": "custom_fields.customer_id",
}
NOTES_MAPPING: Final[Mapping[str, str]] = {"from": "uuid", "to": "identity_group.notes"}
MOBILE_MAPPING: Final[Mapping[str, str]] = {
    "from": "extra_values.mobile",
    "to": "identity_group.mobile_phones",
}


@functools.cache
def rsa_key() -> rsa.RSAPrivateKey:
    """The example RS256 private key (2048 bits): made on first use, the same for the process."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey | None = None) -> str:
    """The SubjectPublicKeyInfo PEM of `key` (default: `rsa_key()`), as `rsa_public_key` takes it."""
    public = (key or rsa_key()).public_key()
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def community(
    community_id: str = COMMUNITY_ID,
    *,
    hmac_keys: Mapping[str, str] | None = None,
    rsa_kid: str | None = RS_KID,
    rsa_public_pem: str | None = None,
    custom_fields: Iterable[Mapping[str, str]] = (CUSTOMER_ID_FIELD,),
    mappings: Iterable[Mapping[str, str]] = (CUSTOMER_ID_MAPPING, NOTES_MAPPING, MOBILE_MAPPING),
    **settings: Any,
) -> dict[str, Any]:
    """One community of the YAML of DESIGN §5, as a dict: require mode, the HS256 keys
    `hmac_keys` (kid -> secret; default `acme_2026` with `HMAC_SECRET`), then the RS256 key
    `rsa_kid` (None: none) with `rsa_public_pem` (default: `rsa_key()`'s), the fields and the
    mappings. `settings` (e.g. `max_validity_seconds=86400`) are added or override."""
    keys: list[dict[str, str]] = [
        {"kid": kid, "hmac_secret": secret} for kid, secret in (hmac_keys or {HS_KID: HMAC_SECRET}).items()
    ]
    if rsa_kid is not None:
        keys.append({"kid": rsa_kid, "rsa_public_key": rsa_public_pem or public_pem()})
    return {
        "id": community_id,
        "signed_identities": "require",
        **settings,
        "jwt_keys": keys,
        "custom_fields": [dict(field) for field in custom_fields],
        "mappings": [dict(mapping) for mapping in mappings],
    }


def unsigned_community(community_id: str = UNSIGNED_COMMUNITY_ID) -> dict[str, Any]:
    """A community that takes unsigned identities only (V3, `signed_identities: reject`)."""
    return {"id": community_id, "signed_identities": "reject"}


def config_yaml(*communities: Mapping[str, Any]) -> str:
    """The YAML `config apply` and `run --config` read; default: `acme` and `openshop`."""
    chosen = list(communities) or [community(), unsigned_community()]
    return yaml.safe_dump({"communities": [dict(c) for c in chosen]}, sort_keys=False)
