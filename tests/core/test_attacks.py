"""The well-known JWT attacks, each refused with the reason DESIGN §3 gives (V4–V7)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.support.core import (
    HS_KID,
    RS_KID,
    SECRET,
    b64json,
    b64url,
    good_claims,
    make_token,
    other_community_token,
    public_pem,
    rsa_private,
    sign_hs256,
)

ATTACKER = rsa_private(2048, 2)


def _jwk(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    return json.loads(RSAAlgorithm.to_jwk(key.public_key()))  # type: ignore[arg-type]


def test_alg_none_is_unsupported_algorithm(verdict: Any) -> None:
    for alg in ("none", "None", "nOnE"):
        token = make_token(alg=alg, sign_as="none")
        assert token.endswith(".")
        assert verdict(token) == "unsupported_algorithm"


def test_alg_none_with_a_real_signature_is_unsupported_algorithm(verdict: Any) -> None:
    assert verdict(make_token(alg="none", sign_as="HS256")) == "unsupported_algorithm"


@pytest.mark.parametrize("pem_form", ["spki", "pkcs1"])
def test_algorithm_confusion_rsa_public_key_as_hmac_secret(verdict: Any, pem_form: str) -> None:
    """An HS256 token whose HMAC key is the community's RSA public key PEM, naming the RSA kid."""
    pem = public_pem(rsa_private(), pkcs1=pem_form == "pkcs1")
    for material in (pem.encode(), pem.strip().encode()):
        token = make_token(alg="HS256", kid=RS_KID, key=material)
        assert verdict(token) == "algorithm_key_mismatch"


def test_embedded_jwk_header_is_not_used(verdict: Any) -> None:
    """The attacker signs with their own key and ships its public half in `jwk`."""
    token = make_token(alg="RS256", kid=RS_KID, key=ATTACKER, header={"jwk": _jwk(ATTACKER)})
    assert verdict(token) == "invalid_signature"


def test_embedded_jwk_with_attacker_kid_is_unknown_kid(verdict: Any) -> None:
    jwk = {**_jwk(ATTACKER), "kid": "attacker"}
    token = make_token(alg="RS256", kid="attacker", key=ATTACKER, header={"jwk": jwk})
    assert verdict(token) == "unknown_kid"


@pytest.mark.parametrize("name", ["jku", "x5u"])
def test_jku_and_x5u_headers_are_ignored(verdict: Any, name: str) -> None:
    header = {name: "https://attacker.example/keys.json"}
    assert verdict(make_token(alg="RS256", kid=RS_KID, key=ATTACKER, header=header)) == "invalid_signature"
    # ignored, not refused: with the real key the same header does no harm
    assert verdict(make_token(alg="RS256", kid=RS_KID, header=header)) == "accepted"


def test_x5c_header_is_not_used(verdict: Any) -> None:
    header = {"x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]}
    assert verdict(make_token(alg="RS256", kid=RS_KID, key=ATTACKER, header=header)) == "invalid_signature"


@pytest.mark.parametrize(
    "kid",
    [
        "../acme_2026",
        "../../etc/passwd",
        "acme_2026/../acme_2026",
        "acme_2026'",
        '"acme_2026"',
        "acme_2026' OR '1'='1",
        "x'; DROP TABLE jwt_keys; --",
        "ACME_2026",
        "Acme_2026",
        "acme-2026",
        "acme 2026",
        "acme_2026\x00",
        "acme_2026\n",
        "a" * 65,
        "acme_2026" + "_" * 56,  # 65 chars starting with a real kid
        "k" * 1000,
        "/dev/null",
        "%2e%2e%2f",
    ],
)
def test_kid_injection_is_unknown_kid(verdict: Any, kid: str) -> None:
    assert verdict(make_token(kid=kid)) == "unknown_kid"


def test_kid_of_64_chars_is_a_valid_shape_but_unknown(verdict: Any) -> None:
    assert verdict(make_token(kid="a" * 64)) == "unknown_kid"


def test_kid_of_another_community_is_unknown_kid(verdict: Any) -> None:
    """Signed correctly with the other community's key, presented to acme (V6)."""
    assert verdict(other_community_token()) == "unknown_kid"
    assert verdict(other_community_token(), community_id="other") == "accepted"


def test_stripped_signature_is_invalid_signature(verdict: Any) -> None:
    for alg, kid in (("HS256", HS_KID), ("RS256", RS_KID)):
        head, body, _ = make_token(alg=alg, kid=kid).split(".")
        assert verdict(f"{head}.{body}.") == "invalid_signature"


@pytest.mark.parametrize("alg,kid", [("HS256", HS_KID), ("RS256", RS_KID)])
def test_tampered_payload_is_invalid_signature(verdict: Any, alg: str, kid: str) -> None:
    head, _, sig = make_token(alg=alg, kid=kid).split(".")
    forged = b64json(good_claims(uuid="admin", exp=2_000_000_000))
    assert verdict(f"{head}.{forged}.{sig}") == "invalid_signature"


@pytest.mark.parametrize("alg,kid", [("HS256", HS_KID), ("RS256", RS_KID)])
def test_tampered_header_is_invalid_signature(verdict: Any, alg: str, kid: str) -> None:
    _, body, sig = make_token(alg=alg, kid=kid).split(".")
    head = b64json({"typ": "JWT", "alg": alg, "kid": kid, "x": 1})
    assert verdict(f"{head}.{body}.{sig}") == "invalid_signature"


def test_truncated_signature_is_invalid_signature(verdict: Any) -> None:
    """Cut to a whole number of base64 quanta (43 -> 40 characters), the text stays canonical
    base64url and only the signature is wrong; a cut that leaves set unused bits is V4's."""
    token = make_token()
    assert verdict(token[:-3]) == "invalid_signature"


def test_signature_of_another_token_is_invalid_signature(verdict: Any) -> None:
    a = make_token(good_claims(uuid="a"))
    b = make_token(good_claims(uuid="b"))
    assert verdict(".".join(a.split(".")[:2] + b.split(".")[2:])) == "invalid_signature"


def test_secret_read_as_hex_instead_of_ascii_is_invalid_signature(verdict: Any) -> None:
    """The HMAC key is the 24 ASCII characters, not the 12 bytes they spell in hex."""
    assert verdict(make_token(key=bytes.fromhex(SECRET))) == "invalid_signature"
    assert verdict(make_token(key=SECRET.encode("ascii"))) == "accepted"


def test_secret_in_another_encoding_is_invalid_signature(verdict: Any) -> None:
    for key in (SECRET.upper().encode(), SECRET.encode("utf-16-le"), b64url(SECRET.encode()).encode()):
        assert verdict(make_token(key=key)) == "invalid_signature"


def test_crit_header_is_invalid_header(verdict: Any) -> None:
    assert verdict(make_token(header={"crit": ["b64"], "b64": False})) == "invalid_header"
    assert verdict(make_token(header={"crit": []})) == "invalid_header"


def test_unencoded_payload_b64_false_is_invalid_header(verdict: Any) -> None:
    assert verdict(make_token(header={"b64": False})) == "invalid_header"


@pytest.mark.parametrize("typ", [..., "JOSE", "JWS", "application/jwt", "jwt+x", None])
def test_typ_missing_or_other_is_invalid_header(verdict: Any, typ: Any) -> None:
    token = make_token(drop=("typ",)) if typ is ... else make_token(header={"typ": typ})
    assert verdict(token) == "invalid_header"


def test_duplicate_header_member_cannot_smuggle_alg(verdict: Any) -> None:
    """A JSON header with alg twice: whatever the parser keeps, the verdict is not `accepted`."""
    payload = b64json(good_claims())
    head = b64url(b'{"typ":"JWT","alg":"HS256","kid":"acme_2026","alg":"none"}')
    signing_input = f"{head}.{payload}".encode()
    token = f"{head}.{payload}.{b64url(sign_hs256(signing_input, SECRET.encode()))}"
    assert verdict(token) != "accepted"


def test_hmac_token_signed_with_empty_key_is_invalid_signature(verdict: Any) -> None:
    assert verdict(make_token(key=b"")) == "invalid_signature"
