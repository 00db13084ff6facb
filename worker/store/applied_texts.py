"""`config apply` reads only the communities whose text changed since the last apply (T4).

A file of 100 000 communities is mostly the text the store was last made from; reading all of
it as YAML took ~60 s of CPU for a file that changes one community. So the file is cut into
its communities' texts (`split_items`: the items of the `communities:` list), each text's
digest is compared with the one recorded by the apply that last made that community
(migration 0008, `applied_texts`), and only the other texts are read, as one YAML document
of their own, with the same models (DESIGN §5, A3). A recorded digest counts only while the
community's `changed_xid` (0006) is still the one recorded with it: any other write since (the
API, a `keys` command, SQL) makes the next apply read and diff that community again.

Whenever the cut is in doubt the whole file is read, as before: a file not of the plain shape
`communities:` + block list items (flow style, other top-level keys, directives, several
documents), aliases (an item may name an anchor of another), line breaks other than LF and
CRLF (YAML's lone CR, NEL, LS and PS, which the cut's lines do not see), or texts that do not
read as one community each. Errors are always those of the whole file (its lines, its list indexes): the
texts read on their own that fail are read again as the whole file, which says why.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import re
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg

from worker.core.config import ConfigError, ConfigSpec, validate_spec
from worker.store.yaml_io import no_collector, parse_yaml, read_mapping, refuse_withheld_secrets

#: Part of every digest: a change in how texts are read (this module) can start again from
#: nothing by changing it. A change of the models or of the release does so by itself
#: (`reading_key`).
_PERSON: Final = b"iw-apply-v1"
#: `communities:` alone on its line (a comment may follow).
_LIST_KEY = re.compile(r"communities:[ \t]*(?:#.*)?\r?")
#: Items read per YAML document (see `_read_items`).
READ_BATCH: Final = 2000
#: An alias (`*name`) anywhere: an item could name an anchor defined in another one. In flow
#: style it may follow a quoted key's `:` with no space (`{"a":*x}`).
_ALIAS = re.compile(r"(?:^|[ \t\[{,:])\*[^ \t\r\n]", re.MULTILINE)


def split_items(text: str) -> list[str] | None:
    """The text of each item of the `communities:` list, in order, or None when the file is
    not of the plain shape this cut is sure of (then the whole file is read).

    The plain shape: comments and blank lines, `communities:` at column 0, then one or more block list
    items `- ` all at one indentation, every other line of content indented deeper (or a
    comment). An item's text runs from its `- ` line to the next one (comments included)."""
    if _ALIAS.search(text) or _other_break(text):
        return None
    first = re.search(r"^[^ \t\r\n#].*$", text, re.MULTILINE)  # the first content at column 0
    if first is None or not _LIST_KEY.fullmatch(first[0]) or not _comments_only(text[: first.start()]):
        return None
    body = first.end() + 1
    if body >= len(text):
        return None  # `communities:` alone is null, not a list: the whole read refuses it
    start = re.compile(r"^( *)-(?: |\r?$)", re.MULTILINE).search(text, body)
    if start is None:
        return None
    indent = len(start[1])
    if not _comments_only(text[body : start.start()]):
        return None
    # Every line of content at this indentation or less: each must open an item.
    shallow = re.compile(rf"^ {{0,{indent}}}(?=[^ \r\n#])(.*)$", re.MULTILINE)
    starts: list[int] = []
    for match in shallow.finditer(text, start.start()):
        rest = match[0]
        if not (rest.startswith(" " * indent + "- ") or rest.rstrip("\r") == " " * indent + "-"):
            return None
        starts.append(match.start())
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def _other_break(text: str) -> bool:
    """A line break YAML sees and the cut's `^`/`$` do not (YAML 1.1 §5.4: a lone CR, NEL,
    LS, PS): a comment ending at one could hide an item, or a top-level key, from the cut.
    Found with str methods (C speed: ~0.03 s for 32 MB, a regex took ~0.3 s)."""
    return any(ch in text for ch in "\x85\u2028\u2029") or text.count("\r") != text.count("\r\n")


def _comments_only(text: str) -> bool:
    """Blank lines and comments, indented with spaces only: YAML refuses a tab, or any other
    white space, that starts a line at the top level."""
    return all(
        line.lstrip(" ") in ("", "\r") or line.lstrip(" ").startswith("#") for line in text.split("\n")
    )


@functools.cache
def reading_key() -> bytes:
    """What a recorded digest holds beside the text: the release and the JSON Schema of the
    models a text is validated with, so a release that reads a text differently (a default, a
    bound, a new rule) reads every text again instead of trusting the previous release's apply."""
    schema = json.dumps(ConfigSpec.model_json_schema(), sort_keys=True)
    release = importlib.metadata.version("identity-worker")
    return hashlib.blake2b(f"{release}\n{schema}".encode(), digest_size=32).digest()


def digest(item: str) -> bytes:
    """The digest an item's text is recorded under (never the text: it holds secrets)."""
    return hashlib.blake2b(item.encode(), digest_size=20, key=reading_key(), person=_PERSON).digest()


@dataclass(slots=True)
class Reading:
    """What `read_file` made of a file: `config` holds the communities that were read (all of
    them when the file was read whole); `unchanged` the ids of those skipped (their text is the
    one the store was made from, and the store did not change since); `digests` each read
    community's text digest, to record once written (`record`)."""

    config: ConfigSpec
    unchanged: list[str] = field(default_factory=list)
    digests: dict[str, bytes] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        """Every community of the file (read or skipped)."""
        return [*self.unchanged, *(spec.id for spec in self.config.communities)]


async def read_file(conn: asyncpg.Connection, text: str) -> Reading:
    """The file's communities, reading only the texts not recorded as unchanged. Run it in
    the apply's transaction, after its lock (the recorded state must be the one written over).
    ConfigError: the whole file's problems."""
    items = split_items(text)
    if items is None:
        return _whole(text)
    known = await _known(conn)
    digests = [digest(item) for item in items]
    if len(set(digests)) != len(digests):  # an item written twice: the whole file says so
        return _whole(text)
    unchanged = [known[d] for d in digests if d in known]
    fresh = [(item, d) for item, d in zip(items, digests, strict=True) if d not in known]
    try:
        config = _read_items([item for item, _ in fresh])
    except ConfigError:
        return _whole(text)  # raises with the file's own lines and indexes
    ids = [spec.id for spec in config.communities] if config is not None else []
    if config is None or len(ids) != len(fresh) or not set(ids).isdisjoint(unchanged):
        return _whole(text)  # not one community per text, or an id twice
    return Reading(config, unchanged, {cid: d for cid, (_, d) in zip(ids, fresh, strict=True)})


def _whole(text: str) -> Reading:
    refuse_withheld_secrets(text)
    return Reading(parse_yaml(text))


def _read_items(items: list[str]) -> ConfigSpec | None:
    """The items' communities, validated as one file; None when the texts are not one
    community each. Read `READ_BATCH` items per YAML document: the node tree of a whole file of
    100 000 communities took ~3 GB; a batch's is dropped once its data is made."""
    data: list[Any] = []
    with no_collector():
        refuse_withheld_secrets("".join(items))
        for start in range(0, len(items), READ_BATCH):
            batch = items[start : start + READ_BATCH]
            read = read_mapping("communities:\n" + "".join(batch)).get("communities")
            if not isinstance(read, list) or len(read) != len(batch):
                return None
            data += read
        return validate_spec(ConfigSpec, {"communities": data})


async def _known(conn: asyncpg.Connection) -> dict[bytes, str]:
    """Recorded digests of communities unchanged since they were recorded: digest → id."""
    rows = await conn.fetch(
        "SELECT t.digest, t.community_id FROM applied_texts t "
        "JOIN communities c ON c.id = t.community_id AND c.changed_xid = t.changed_xid"
    )
    return {bytes(row["digest"]): row["community_id"] for row in rows}


async def record(conn: asyncpg.Connection, digests: dict[str, bytes]) -> None:
    """After the apply's writes, in its transaction (its communities now hold what their texts
    say): each read community's text digest and the change counter it has now. A row already
    equal is not written again (a file that changes nothing writes nothing)."""
    if not digests:
        return
    await conn.execute(
        "INSERT INTO applied_texts AS t (community_id, digest, changed_xid) "
        "SELECT u.id, u.digest, c.changed_xid FROM unnest($1::text[], $2::bytea[]) AS u(id, digest) "
        "JOIN communities c ON c.id = u.id "
        "ON CONFLICT (community_id) DO UPDATE "
        "SET digest = EXCLUDED.digest, changed_xid = EXCLUDED.changed_xid "
        "WHERE (t.digest, t.changed_xid) IS DISTINCT FROM (EXCLUDED.digest, EXCLUDED.changed_xid)",
        list(digests),
        list(digests.values()),
    )
