"""The YAML of DESIGN §5 written back out (`config export`), and the guard on placeholders.

Without `--include-secrets` an HMAC secret is exported as the placeholder
`<withheld sha256:…>` (its fingerprint): it fails the secret's format check in every
loader, and `config apply` names it for what it is, so an export without secrets can
never be applied by mistake as an empty or wrong key. RSA public keys are not secrets and
are always exported.
"""

from __future__ import annotations

import re
from typing import Any, Final

import yaml

from worker.core.config import (
    DEFAULT_RETIREMENT_WINDOW_SECONDS,
    CommunitySpec,
    ConfigError,
    ConfigSpec,
    JwtKeySpec,
)

WITHHELD_PREFIX: Final = "<withheld "
_WITHHELD_IN_TEXT = re.compile(r"""^[ \t]*-?[ \t]*hmac_secret:[ \t]*["']?<withheld """, re.MULTILINE)

HEADER_WITHHELD: Final = """\
# identity-worker config export. HMAC secrets are WITHHELD: each shows as "<withheld sha256:…>",
# which `config apply` and `process --config` refuse. Run `config export --include-secrets` for a
# file that can be applied, and keep that one as secret as the keys themselves.
"""
HEADER_SECRETS: Final = """\
# identity-worker config export WITH HMAC SECRETS: keep this file as secret as the keys themselves.
"""


class _Dumper(yaml.SafeDumper):
    """Block lists indented under their key; multi-line text (PEM keys) as literal blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def _key_data(key: JwtKeySpec, include_secrets: bool) -> dict[str, str]:
    if key.hmac_secret is None:
        assert key.rsa_public_key is not None
        return {"kid": key.kid, "rsa_public_key": key.rsa_public_key.strip() + "\n"}
    secret = (
        key.hmac_secret.get_secret_value()
        if include_secrets
        else f"{WITHHELD_PREFIX}{key.prepare().fingerprint}>"
    )
    return {"kid": key.kid, "hmac_secret": secret}


def _community_data(spec: CommunitySpec, include_secrets: bool) -> dict[str, Any]:
    return {
        "id": spec.id,
        "signed_identities": spec.signed_identities.value,
        "min_validity_seconds": spec.min_validity_seconds,
        "leeway_seconds": spec.leeway_seconds,
        **({"max_validity_seconds": spec.max_validity_seconds} if spec.max_validity_seconds else {}),
        **(
            {"retirement_window_seconds": spec.retirement_window_seconds}
            if spec.retirement_window_seconds != DEFAULT_RETIREMENT_WINDOW_SECONDS
            else {}
        ),
        "jwt_keys": [_key_data(k, include_secrets) for k in spec.jwt_keys],
        "custom_fields": [f.model_dump(exclude_none=True) for f in spec.custom_fields],
        "mappings": [m.model_dump(by_alias=True) for m in spec.mappings],
    }


def dump_config(config: ConfigSpec, *, include_secrets: bool = False) -> str:
    """The YAML `config apply` and `process --config` read (placeholders aside, see above)."""
    data = {"communities": [_community_data(c, include_secrets) for c in config.communities]}
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)
    has_hmac = any(k.hmac_secret is not None for c in config.communities for k in c.jwt_keys)
    if not has_hmac:
        return body
    return (HEADER_SECRETS if include_secrets else HEADER_WITHHELD) + body


def refuse_withheld_secrets(text: str) -> None:
    """`config apply` of an export made without --include-secrets: say so, clearly."""
    lines = [text.count("\n", 0, m.start()) + 1 for m in _WITHHELD_IN_TEXT.finditer(text)]
    if lines:
        where = ", ".join(str(n) for n in lines[:5]) + (", …" if len(lines) > 5 else "")
        raise ConfigError(
            [
                f"line {where}: hmac_secret is a placeholder from `config export` without --include-secrets; "
                "put the real secret there, or export again with --include-secrets"
            ]
        )
