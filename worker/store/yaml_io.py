"""The configuration YAML of DESIGN §5, read and written: the one place that parses or emits it.

Reading (`parse_yaml`, `load_config_file`: `--config` files and `config apply`): safe tags
only, no key repeated in any mapping (DESIGN §5), then the `core/config.py` models'
validation. Writing (`export_header`, `dump_communities`: `config export`, streamed a batch
of communities at a time): the same shape back, the text PyYAML's emitter writes.

Without `--include-secrets` an HMAC secret is exported as the placeholder
`<withheld sha256:…>` (its fingerprint): it fails the secret's format check in every
loader, and `config apply` names it for what it is (`refuse_withheld_secrets`), so an export
without secrets can never be applied by mistake as an empty or wrong key. RSA public keys are
not secrets and are always exported.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, cast

import yaml

from worker.core.community import Community, prepare
from worker.core.config import (
    DEFAULT_RETIREMENT_WINDOW_SECONDS,
    CommunitySpec,
    ConfigError,
    ConfigSpec,
    JwtKeySpec,
    validate_spec,
)
from worker.core.problems import SECRET_SHAPED, SECRET_SHAPED_KEY

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


class _UniqueKeyLoader(yaml.CSafeLoader):
    """PyYAML's safe loader, except that a key repeated in one mapping is an error (DESIGN §5).

    On libyaml's parser (`CSafeLoader`: the same safe constructor and YAML 1.1 resolver over C
    scanning), with each plain scalar's tag resolved once per distinct text: a file of 100 000
    communities holds millions of scalars, mostly the same few keys (T4).

    PyYAML keeps the last silently: a `signed_identities: reject` pasted under a `require` line
    would switch signatures off without a word. Merge keys (`<<`) keep YAML's meaning: a key
    written in the mapping overrides a merged one. A key that two merged mappings both give is
    refused (which one wins differs between YAML readers; PyYAML 6.0.4 even decides by string
    identity), and so is a key repeated in a mapping written inline after `<<` (never
    constructed on its own, it reaches the result only through flattening)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._checked: set[int] = set()  # mapping nodes already checked (flattening mutates them)
        self._tags: dict[tuple[str, bool, bool], str] = {}

    def resolve(self, kind: type[yaml.Node], value: str, implicit: tuple[bool, bool]) -> str:
        # Resolver.resolve is a function of these three alone (no path resolvers are registered).
        if kind is not yaml.ScalarNode:
            return _resolve(self, kind, value, implicit)
        key = (value, *implicit)
        tag = self._tags.get(key)
        if tag is None:
            tag = self._tags[key] = _resolve(self, kind, value, implicit)
        return tag

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
            if merge:
                key: Any = "<<"
            elif key_node.tag == _STR_TAG and isinstance(key_node, yaml.ScalarNode):
                key = key_node.value  # what construct_yaml_str gives, without constructing it twice
            else:
                key = self.construct_object(key_node, deep=True)
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


#: PyYAML's own resolution (untyped in its stubs): the tag YAML 1.1 gives a node's text.
_resolve = cast(
    Callable[[Any, type[yaml.Node], str, tuple[bool, bool]], str], yaml.resolver.BaseResolver.resolve
)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


def _key_name(key: object) -> str:
    text = repr(key)
    if SECRET_SHAPED.search(str(key)):  # an all-digit secret written unquoted is a YAML int
        return SECRET_SHAPED_KEY  # never echo what may be a secret
    return text if len(text) <= 66 else text[:63] + "..."


def parse_yaml(text: str) -> ConfigSpec:
    """The one reader of configuration YAML (`--config` files and `config apply`): safe tags
    only, no repeated key in any mapping, then the models' validation."""
    with no_collector():
        return validate_spec(ConfigSpec, read_mapping(text))


def read_mapping(text: str) -> dict[Any, Any]:
    """`parse_yaml`'s first half: the file's data, unvalidated. ConfigError: not YAML, a key
    repeated, or not a mapping."""
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
    return data


@contextlib.contextmanager
def no_collector() -> Iterator[None]:
    """The cyclic collector off while a file is read (T4): reading builds millions of objects
    that all live on, and the collector's passes over them grew with the file (a file of
    100 000 communities: 64 s of CPU with it, 16 s without). Reading makes no cycles to collect."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


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


def _dumped(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)


#: Text PyYAML's emitter writes plain after `key: ` when the resolver reads it back as text:
#: ids, kids, hex secrets, withheld placeholders, mapping paths. Anything else goes through
#: the emitter itself (`_value_lines`); tests hold the two equal.
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*|<withheld sha256:[0-9a-f]{16}>")
#: A PEM key as the store holds it (one block, one final newline): a literal block.
_PEM = re.compile(r"-----BEGIN [A-Z ]+-----\n(?:[A-Za-z0-9+/=]{1,76}\n)+-----END [A-Z ]+-----\n")
_RESOLVER = yaml.resolver.Resolver()


@functools.lru_cache(maxsize=4096)
def _emitted(value: str, start: int) -> str:
    """PyYAML's own text for a value that starts at column `start` (its line folding counts
    columns), lines after the first indented relative to the mapping the value belongs to."""
    key = "k" * (start - 2)  # `key: ` ends at `start`
    text = _dumped({key: value}).removeprefix(f"{key}: ")
    return text.removesuffix("...\n")  # a kept (`|+`) block ends this small document only


#: A line break of YAML's (PyYAML writes each with the indentation after it), followed by
#: text: where the value's lines take their column. An empty line stays empty.
_NEW_LINE = re.compile("([\n\x85\u2028\u2029])(?=[^\n\x85\u2028\u2029])")


def _value_text(value: str, start: int) -> str:
    if _PLAIN.fullmatch(value) and _resolve(_RESOLVER, yaml.ScalarNode, value, (True, False)) == _STR_TAG:
        return value + "\n"
    if _PEM.fullmatch(value):
        return "|\n" + "".join(f"  {line}\n" for line in value.splitlines())
    return _emitted(value, start)


def _mapping_lines(pairs: dict[str, Any], indent: str, first: str) -> Iterator[str]:
    """One block mapping at `indent`; its first line starts with `first` (e.g. `- `)."""
    column = indent + " " * len(first)  # where this mapping's keys start
    lead = indent + first
    for key, value in pairs.items():
        if isinstance(value, list):
            yield f"{lead}{key}: []\n" if not value else f"{lead}{key}:\n"
            for item in value:  # sequences indented under their key (`_Dumper`)
                yield from _mapping_lines(item, column + "  ", "- ")
        elif isinstance(value, int):
            yield f"{lead}{key}: {value}\n"
        else:
            text = _value_text(value, len(lead) + len(key) + 2)
            yield f"{lead}{key}: " + _NEW_LINE.sub(lambda m: m[1] + column, text)
        lead = column


def export_header(*, has_hmac: bool, include_secrets: bool, empty: bool) -> str:
    """What comes before the first community: the secrets warning when the export holds HMAC
    keys, then `communities:` (`communities: []` for none)."""
    header = (HEADER_SECRETS if include_secrets else HEADER_WITHHELD) if has_hmac else ""
    return header + ("communities: []\n" if empty else "communities:\n")


def dump_communities(specs: Iterable[CommunitySpec], *, include_secrets: bool = False) -> str:
    """The list items of `specs` under `communities:`, as `config export` streams them (T4):
    the text PyYAML writes for the whole file, one community at a time."""
    return "".join(
        line for spec in specs for line in _mapping_lines(_community_data(spec, include_secrets), "  ", "- ")
    )


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
