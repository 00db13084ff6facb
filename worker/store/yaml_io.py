"""The configuration YAML of DESIGN §5, read and written: the one place that parses or emits it.

Reading (`parse_yaml`, `load_config_file`: `--config` files and `config apply`): safe tags
only, no key repeated in any mapping (DESIGN §5), then the `core/config.py` models'
validation. Writing (`dump_config`: `config export`): the same shape back.

Without `--include-secrets` an HMAC secret is exported as the placeholder
`<withheld sha256:…>` (its fingerprint): it fails the secret's format check in every
loader, and `config apply` names it for what it is (`refuse_withheld_secrets`), so an export
without secrets can never be applied by mistake as an empty or wrong key. RSA public keys are
not secrets and are always exported.
"""

from __future__ import annotations

import re
from typing import Any, Final

import yaml

from worker.core.community import Community, prepare
from worker.core.config import (
    DEFAULT_RETIREMENT_WINDOW_SECONDS,
    SECRET_SHAPED,
    SECRET_SHAPED_KEY,
    CommunitySpec,
    ConfigError,
    ConfigSpec,
    JwtKeySpec,
    validate_spec,
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

# ---------------------------------------------------------------- reading


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key repeated in one mapping is an error (DESIGN §5).

    PyYAML keeps the last silently: a `signed_identities: reject` pasted under a `require` line
    would switch signatures off without a word. Merge keys (`<<`) keep YAML's meaning: a key
    written in the mapping overrides a merged one. A key that two merged mappings both give is
    refused (which one wins differs between YAML readers; PyYAML 6.0.4 even decides by string
    identity), and so is a key repeated in a mapping written inline after `<<` (never
    constructed on its own, it reaches the result only through flattening)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._checked: set[int] = set()  # mapping nodes already checked (flattening mutates them)

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # Every mapping comes here first, before flattening splices merged pairs into it: the ones
        # constructed (SafeConstructor.construct_mapping) and the ones a `<<` names (recursion).
        if id(node) not in self._checked:
            self._checked.add(id(node))
            self._refuse_repeats(node.value)
            self._refuse_merge_overlaps(node.value)
        super().flatten_mapping(node)

    def _refuse_repeats(self, pairs: list[tuple[yaml.Node, yaml.Node]]) -> None:
        first_line: dict[Any, int] = {}
        for key_node, _ in pairs:
            # A merge key (`<<`) is not constructed; it may appear once like any other key.
            merge = key_node.tag == _MERGE_TAG
            key = "<<" if merge else self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                earlier = first_line.get(key)
            except TypeError:  # an unhashable key: SafeLoader refuses it with its own message
                return
            if earlier is not None:
                where = f"line {line}: key {_key_name(key)}"
                raise ConfigError([f"{where} repeated in one mapping (first at line {earlier}); keep one"])
            first_line[key] = line

    def _refuse_merge_overlaps(self, pairs: list[tuple[yaml.Node, yaml.Node]]) -> None:
        for key_node, value_node in pairs:
            if key_node.tag != _MERGE_TAG:
                continue
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            given: set[Any] = set()
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    return  # SafeLoader refuses it with its own message
                self.flatten_mapping(source)
                keys = [self.construct_object(k, deep=True) for k, _ in source.value]
                try:
                    repeated = [key for key in keys if key in given]
                    given.update(keys)
                except TypeError:  # an unhashable key: SafeLoader refuses it with its own message
                    return
                if repeated:
                    line = key_node.start_mark.line + 1
                    where = f"line {line}: key {_key_name(repeated[0])}"
                    raise ConfigError([f"{where} comes from more than one merged mapping; keep one"])


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _key_name(key: object) -> str:
    text = repr(key)
    if SECRET_SHAPED.search(str(key)):  # an all-digit secret written unquoted is a YAML int
        return SECRET_SHAPED_KEY  # never echo what may be a secret
    return text if len(text) <= 66 else text[:63] + "..."


def parse_yaml(text: str) -> ConfigSpec:
    """The one reader of configuration YAML (`--config` files and `config apply`): safe tags
    only, no repeated key in any mapping, then the models' validation."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: safe tags only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "not valid YAML"
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([f"{where}{problem}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(["the file must hold a mapping with a 'communities' list"])
    return validate_spec(ConfigSpec, data)


def load_config_file(path: str) -> dict[str, Community]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError([f"cannot read {path}: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path} is not UTF-8 text"]) from None
    return prepare(parse_yaml(text))


# ---------------------------------------------------------------- writing


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
