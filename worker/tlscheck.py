"""Which TLS certificate check failed, as one phrase for the operator (K10, docs/security.md).

Shared by the Kafka clients (`worker.kafka.security`) and the configuration store
(`worker.store.db`): decided by OpenSSL's verification code, never by message text.
"""

from __future__ import annotations

import ssl
from typing import Final

# OpenSSL's X509_V_ERR_* codes.
_NAME_MISMATCH: Final = frozenset({62, 64})  # HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH
_OUT_OF_DATE: Final = frozenset({9, 10})  # CERT_NOT_YET_VALID, CERT_HAS_EXPIRED


def certificate_problem(exc: ssl.SSLCertVerificationError, peer: str, trust_setting: str) -> str:
    """`peer` ("the broker", "the server") and the setting naming the trusted CAs, for the hint."""
    if exc.verify_code in _NAME_MISMATCH:
        return (
            f"hostname verification failed: {peer}'s certificate does not name this host "
            f"({exc.verify_message}); connect by a name the certificate holds"
        )
    if exc.verify_code in _OUT_OF_DATE:
        return f"{peer}'s certificate is out of date ({exc.verify_message}); it must be renewed"
    return f"{peer}'s certificate is not trusted ({exc.verify_message}); check {trust_setting}"
