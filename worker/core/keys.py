"""JWT keys: the table of key kinds, the one verifier per algorithm, key preparation (V6, V7).

`KEY_KINDS` is the registry: each kind of key a community may hold (`hmac_secret` → HS256,
`rsa_public_key` → RS256), its one algorithm and how its text is read. The supported
algorithms (V5), the spec's `alg`, the output's `verification.alg`, the help texts and the
store's CHECK values (a test holds the migrations to it) all derive from it.

Keys are parsed and prepared once per configuration load, never per event. Verification
uses PyJWT's algorithm objects directly, each restricted to its one algorithm; they carry
no warning machinery (PyJWT warns about 24-byte HMAC keys only in `api_jws`, which the
per-event path never calls).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import PublicFormat
from jwt.algorithms import Algorithm, HMACAlgorithm, RSAAlgorithm

#: The algorithms of `KEY_KINDS`, as a type (a test holds the two equal: mypy needs it spelt).
AlgName = Literal["HS256", "RS256"]

KID_PATTERN: Final = r"^[a-z0-9_]+$"
KID_MAX_CHARS: Final = 64
HMAC_SECRET_PATTERN: Final = r"^[0-9a-f]{24}$"
RSA_MIN_BITS: Final = 2048

_KID = re.compile(KID_PATTERN)
_HMAC_SECRET = re.compile(HMAC_SECRET_PATTERN)
_PUBLIC_PEM_HEADERS = ("-----BEGIN PUBLIC KEY-----", "-----BEGIN RSA PUBLIC KEY-----")
_PUBLIC_PEM_FOOTERS = ("-----END PUBLIC KEY-----", "-----END RSA PUBLIC KEY-----")


class InvalidKey(ValueError):
    """A key that cannot be accepted. The message never contains the key material."""


def is_valid_kid(kid: object) -> bool:
    return isinstance(kid, str) and len(kid) <= KID_MAX_CHARS and _KID.fullmatch(kid) is not None


def check_kid(kid: str) -> str:
    if not is_valid_kid(kid):
        raise InvalidKey(f"kid must match {KID_PATTERN} and be at most {KID_MAX_CHARS} characters")
    return kid


def check_hmac_secret(secret: str) -> bytes:
    """The HMAC key is the 24 ASCII characters themselves, not the bytes they spell in hex."""
    if not _HMAC_SECRET.fullmatch(secret):
        raise InvalidKey(
            f"hmac_secret must be exactly 24 characters of 0-9a-f (got {len(secret)} characters)"
        )
    return secret.encode("ascii")


#: Distinct RSA public keys kept parsed for sharing (T3); see `load_rsa_public_key`.
SHARED_RSA_KEYS = 16_384


@functools.lru_cache(maxsize=SHARED_RSA_KEYS)
def load_rsa_public_key(pem: str) -> RSAPublicKey:
    """Accept only one RSA public key in PEM (SPKI or PKCS#1) of at least 2048 bits.

    T3: parsed once per distinct text and shared (the spec's validation and the prepared key
    ask for it; communities holding the same public key hold one object). The key object is
    immutable. A refused text raises each time (exceptions are not remembered).

    One key per value (DESIGN §5): `cryptography` reads the first PEM block and ignores the
    rest, so a value holding two keys would silently verify with the first only (a rotation
    pasted into one value would fail without a word)."""
    text = pem.strip()
    if "PRIVATE KEY" in text:
        raise InvalidKey(
            "rsa_public_key is a private key; give the public key only (it is refused, never stored)"
        )
    blocks = max(text.count("-----BEGIN "), text.count("-----END "))
    if blocks > 1:
        raise InvalidKey(
            f"rsa_public_key holds {blocks} PEM blocks; give one key per value (each key under its own kid)"
        )
    if not text.startswith(_PUBLIC_PEM_HEADERS):
        raise InvalidKey("rsa_public_key must be PEM starting with BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY")
    if not text.endswith(_PUBLIC_PEM_FOOTERS):
        raise InvalidKey("rsa_public_key must end with its END PUBLIC KEY line (nothing after it)")
    try:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    except (ValueError, TypeError, UnicodeError):
        raise InvalidKey("rsa_public_key is not a readable PEM public key") from None
    if not isinstance(key, RSAPublicKey):
        raise InvalidKey("rsa_public_key is not an RSA key")
    # `cryptography` also reads an SPKI body under the PKCS#1 label and skips header lines
    # (`Proc-Type: ...`), which the store's CHECK refuses: one reading everywhere (§5), so the
    # body must be exactly this key's DER in the form its label names.
    form = (
        PublicFormat.PKCS1 if text.startswith(_PUBLIC_PEM_HEADERS[1]) else PublicFormat.SubjectPublicKeyInfo
    )
    try:
        body = base64.b64decode("".join("".join(text.splitlines()[1:-1]).split()), validate=True)
    except binascii.Error:
        body = b""
    if body != key.public_bytes(serialization.Encoding.DER, form):
        raise InvalidKey(
            "rsa_public_key must be the key alone: a label that matches its form "
            "(BEGIN PUBLIC KEY for SPKI, BEGIN RSA PUBLIC KEY for PKCS#1), no header lines"
        )
    if key.key_size < RSA_MIN_BITS:
        raise InvalidKey(f"rsa_public_key has {key.key_size} bits; at least {RSA_MIN_BITS} required")
    return key


def _digest(material: bytes) -> str:
    return hashlib.sha256(material).hexdigest()


@dataclass(frozen=True, slots=True)
class JwtKey:
    """A prepared verification key. Its repr never shows the key."""

    kid: str
    alg: AlgName
    verifier: Algorithm = field(repr=False, compare=False)
    prepared: Any = field(repr=False, compare=False)
    digest: str = field(repr=False)

    @property
    def fingerprint(self) -> str:
        """What operators see instead of a key: never enough to recover a secret."""
        return "sha256:" + self.digest[:16]

    def verifies(self, signing_input: bytes, signature: bytes) -> bool:
        return bool(self.verifier.verify(signing_input, self.prepared, signature))


def _read_hmac_secret(secret: str) -> tuple[bytes, bytes]:
    material = check_hmac_secret(secret)
    return material, material


def _read_rsa_public_key(pem: str) -> tuple[RSAPublicKey, bytes]:
    public = load_rsa_public_key(pem)
    return public, public.public_bytes(serialization.Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True, slots=True)
class KeyKind:
    """One kind of key a community may hold (DESIGN §1, §5): the field that holds its text
    (YAML, admin API and CLI, the `jwt_keys` column), the one algorithm it verifies (V6, V7)."""

    name: str
    alg: AlgName
    verifier: Algorithm = field(repr=False)
    #: text → (what the verifier takes, what the fingerprint hashes); raises InvalidKey.
    read: Callable[[str], tuple[Any, bytes]] = field(repr=False)
    #: What the text must be, for help texts (CLI, console); never a secret.
    rule: str = ""
    #: True when what `read` returns is already what the verifier takes (see `HMAC_SECRET`).
    ready: bool = False

    @property
    def title(self) -> str:
        """`hmac_secret (HS256)`: how messages name the kind."""
        return f"{self.name} ({self.alg})"

    def key(self, kid: str, text: str) -> JwtKey:
        """The prepared key `kid` of this kind; InvalidKey (never quoting `text`) when unusable."""
        readable, material = self.read(text)
        prepared = readable if self.ready else self.verifier.prepare_key(readable)
        return JwtKey(check_kid(kid), self.alg, self.verifier, prepared, _digest(material))


HMAC_SECRET: Final = KeyKind(
    "hmac_secret",
    "HS256",
    HMACAlgorithm(HMACAlgorithm.SHA256),
    _read_hmac_secret,
    "exactly 24 characters 0-9a-f (the HMAC key is those 24 ASCII bytes)",
    # T3: HMACAlgorithm.prepare_key only refuses a PEM, SSH, DER or JWK key used as a secret
    # (an algorithm-confusion guard) and returns the bytes: 24 characters 0-9a-f (V6, checked
    # by `read`) are none of those, and its sniffing was most of a community's preparation
    # time (~50 µs a key; 100 000 communities hold 200 000 keys).
    ready=True,
)
RSA_PUBLIC_KEY: Final = KeyKind(
    "rsa_public_key",
    "RS256",
    RSAAlgorithm(RSAAlgorithm.SHA256),
    _read_rsa_public_key,
    f"one BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY, at least {RSA_MIN_BITS} bits",
)
#: The registry (V5, V6, V7): every kind of key, in the order messages list them.
KEY_KINDS: Final = (HMAC_SECRET, RSA_PUBLIC_KEY)
#: V5: the algorithms a token may name; each is one kind's, verified by that kind's object.
ALGORITHMS: Final = tuple(kind.alg for kind in KEY_KINDS)


def listed(names: tuple[str, ...]) -> str:
    """`HS256 or RS256`, `a, b or c`: a registry's names as messages list them."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def sign_token(claims: dict[str, Any], key: Any, alg: AlgName, kid: str) -> str:
    """A token as websites make them (typ JWT, kid), for `token sign`, the demo and benchmarks.

    The product's 24-character HMAC secrets are shorter than PyJWT recommends: its length
    warning is expected here and silenced for this one call only, never globally.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})
