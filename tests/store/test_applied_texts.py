"""`config apply` reads only what changed since the last apply (DESIGN §12, T4;
worker/store/applied_texts.py): held by what it reads (the communities it validates), not by
timing. A file that changes one community of many reads that one; a community changed by
anything else since is read again; errors are the whole file's; a file whose shape the cut is
not sure of is read whole."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import asyncpg
import pytest
import yaml

from tests.support.admin import IDENTITY_WORKER
from tests.support.store import Cli, run_async, run_sql
from worker.core.config import ConfigError, CustomFieldSpec
from worker.devtools import examples
from worker.store import applied_texts
from worker.store import repository as repo
from worker.store.applied_texts import Reading, split_items
from worker.store.sync import Change
from worker.store.yaml_io import parse_yaml


def _community(i: int, label: str = "Customer ID") -> dict[str, Any]:
    return examples.community(
        f"c{i:03d}",
        hmac_keys={"k_a": f"{i:024x}"},
        rsa_kid="k_rsa" if i % 10 == 0 else None,
        custom_fields=[{"key": "customer_id", "label": label, "regex": "C[0-9]{6}"}],
    )


def _text(communities: list[dict[str, Any]]) -> str:
    return yaml.safe_dump({"communities": communities}, sort_keys=False)


def _apply(url: str, text: str) -> tuple[Reading, list[Change]]:
    """What `config apply` does in its transaction: read the file against the store, apply,
    record the texts read."""

    async def go() -> tuple[Reading, list[Change]]:
        conn = await asyncpg.connect(url)
        try:
            async with conn.transaction():
                await conn.execute("LOCK TABLE communities IN EXCLUSIVE MODE")
                reading = await applied_texts.read_file(conn, text)
                changes = await repo.apply_config(conn, reading.config, unchanged=reading.unchanged)
                await applied_texts.record(conn, reading.digests)
        finally:
            await conn.close()
        return reading, changes

    return run_async(go)


def _read(reading: Reading) -> list[str]:
    return [spec.id for spec in reading.config.communities]


def test_a_file_that_changes_one_community_reads_that_one(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(applied_texts, "READ_BATCH", 7)  # the texts read, 7 per YAML document
    communities = [_community(i) for i in range(30)]
    first, _ = _apply(store_url, _text(communities))
    assert len(_read(first)) == 30 and first.unchanged == []

    again, changes = _apply(store_url, _text(communities))
    assert _read(again) == [] and sorted(again.unchanged) == [f"c{i:03d}" for i in range(30)]
    assert changes == []

    communities[7] = _community(7, "Customer number")
    changed, changes = _apply(store_url, _text(communities))
    assert _read(changed) == ["c007"] and len(changed.unchanged) == 29
    assert [c.text.split(" (")[0] for c in changes] == ["field c007/customer_id"]
    stored = run_sql(store_url, "SELECT label FROM custom_fields WHERE community_id = 'c007'")
    assert [r["label"] for r in stored] == ["Customer number"]


def test_a_community_changed_elsewhere_since_is_read_again(store_url: str) -> None:
    """Only while the community's change counter (0006) is the one recorded with its text."""
    communities = [_community(i) for i in range(12)]
    _apply(store_url, _text(communities))

    async def relabel(conn: asyncpg.Connection) -> None:
        await repo.add_field(conn, "c005", CustomFieldSpec(key="plan", label="Added by hand"))

    run_async(lambda: _in_transaction(store_url, relabel))
    reading, changes = _apply(store_url, _text(communities))
    assert _read(reading) == ["c005"]
    assert [c.op for c in changes] == ["-"] and "field c005/plan" in changes[0].text
    stored = run_sql(store_url, "SELECT key FROM custom_fields WHERE community_id = 'c005'")
    assert [r["key"] for r in stored] == ["customer_id"]


async def _in_transaction(url: str, action: Any) -> None:
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await action(conn)
    finally:
        await conn.close()


def test_errors_are_those_of_the_whole_file(store_url: str) -> None:
    """A changed community that is invalid: the problem named with the file's own line and
    list index, as if the file had been read whole; nothing written."""
    communities = [_community(i) for i in range(20)]
    _apply(store_url, _text(communities))
    communities[13]["custom_fields"][0]["regex"] = "C[0-9"  # not a regex
    communities[4]["mappings"].append({"from": "uuid"})  # no `to`
    text = _text(communities)
    with pytest.raises(ConfigError) as whole:
        parse_yaml(text)
    with pytest.raises(ConfigError) as read:
        _apply(store_url, text)
    assert read.value.problems == whole.value.problems
    assert any(p.startswith("communities[13].") for p in read.value.problems), read.value.problems

    broken = text.replace("- id: c015", "- id: c015\n  jwt_keys: [unclosed")
    with pytest.raises(ConfigError) as syntax:
        _apply(store_url, broken)
    with pytest.raises(ConfigError) as whole_syntax:
        parse_yaml(broken)
    assert syntax.value.problems == whole_syntax.value.problems and "line" in syntax.value.problems[0]


def test_a_duplicate_of_an_unchanged_community_is_refused(store_url: str) -> None:
    communities = [_community(i) for i in range(5)]
    _apply(store_url, _text(communities))
    twice = [*communities, _community(2, "Another label")]
    with pytest.raises(ConfigError, match="duplicate community id 'c002'"):
        _apply(store_url, _text(twice))
    with pytest.raises(ConfigError, match="duplicate community id 'c003'"):
        _apply(store_url, _text([*communities, communities[3]]))


def test_prune_keeps_the_unchanged_communities(store_url: str) -> None:
    communities = [_community(i) for i in range(6)]
    _apply(store_url, _text(communities))

    async def go() -> list[Change]:
        conn = await asyncpg.connect(store_url)
        try:
            async with conn.transaction():
                reading = await applied_texts.read_file(conn, _text(communities[:4]))
                assert _read(reading) == []
                return await repo.apply_config(conn, reading.config, prune=True, unchanged=reading.unchanged)
        finally:
            await conn.close()

    changes = run_async(go)
    assert sorted(c.text.split(" (")[0] for c in changes) == ["community c004", "community c005"]
    assert all(c.op == "-" for c in changes)


@pytest.mark.parametrize("empty", ["communities:\n", "# header\ncommunities: # none\n"])
def test_a_list_with_no_items_is_refused_as_the_whole_file_refuses_it(
    cli: Cli, store_url: str, tmp_path: Any, empty: str
) -> None:
    """`communities:` with nothing under it is null, not a list: the whole read refuses it. The
    cut read it as no communities, so a truncated file applied with --prune removed every one
    (T4: an apply is what the whole file says)."""
    _apply(store_url, _text([_community(i) for i in range(3)]))
    path = tmp_path / "truncated.yaml"
    path.write_text(empty)
    refused = cli("config", "apply", str(path), "--prune")
    assert refused.code == 2 and "valid list" in refused.err, refused
    assert len(run_sql(store_url, "SELECT id FROM communities")) == 3


def test_the_cli_says_what_it_skipped(cli: Cli, store_url: str, tmp_path: Any) -> None:
    path = tmp_path / "communities.yaml"
    communities = [_community(i) for i in range(8)]
    path.write_text(_text(communities))
    assert cli("config", "apply", str(path)).code == 0
    communities[3] = _community(3, "Relabelled")
    path.write_text(_text(communities))
    result = cli("config", "apply", str(path))
    assert result.code == 0, result
    assert "~ field c003/customer_id" in result.out and "applied: " in result.out
    bad = _text(communities).replace("Relabelled", "Relabelled\n    regex: '['")
    path.write_text(bad)
    refused = cli("config", "apply", str(path))
    assert refused.code == 2 and refused.err.startswith(f"identity-worker: error: {path}: "), refused


def test_stdin_that_is_not_utf8_is_one_line(store_url: str) -> None:
    """`config apply -` of bytes that are not UTF-8: one line and exit 2, as for a file. Read
    as the interpreter's stdin (surrogateescape in UTF-8 mode), the cut's digest raised a
    UnicodeEncodeError traceback."""
    done = subprocess.run(
        [IDENTITY_WORKER, "config", "apply", "-"],
        input=b"communities:\n- id: a\xff\n  signed_identities: reject\n",
        capture_output=True,
        env={**os.environ, "DATABASE_URL": store_url},
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and done.stderr.decode().count("\n") == 1, done.stderr
    assert b"configuration file - is not UTF-8 text" in done.stderr
    assert run_sql(store_url, "SELECT id FROM communities") == []


# ------------------------------------------------------------------------ the cut (pure)


@pytest.mark.parametrize("brk", ["\r", "\x85", "\u2028", "\u2029"])
def test_a_line_break_the_cut_does_not_see_does_not_change_the_file(store_url: str, brk: str) -> None:
    """YAML breaks lines at a lone CR, NEL, LS and PS as at LF (YAML 1.1 §5.4); a cut made at
    LFs only hid the item after a comment's break (an apply --prune would remove it) and let a
    top-level key after the last item pass: an apply is always what the whole file says (T4)."""
    reject = "\n  signed_identities: reject\n"
    hidden = f"communities: # note{brk}- id: hidden{brk}  {reject.lstrip()}- id: b{reject}"
    reading, _ = _apply(store_url, hidden)
    assert sorted(reading.ids) == ["b", "hidden"] == sorted(c.id for c in parse_yaml(hidden).communities)
    with pytest.raises(ConfigError):
        _apply(store_url, f"communities:\n- id: c{reject[:-1]} # note{brk}other: 1\n")


def test_an_alias_after_a_flow_colon_is_seen(store_url: str) -> None:
    """`{"signed_identities":*m}` is an alias (a quoted flow key's `:` needs no space): the
    cut must see it. Not seen, an item read again beside a changed one took that one's anchor
    (the whole file refuses the anchor twice): a file the whole read refuses turned c's
    signatures off (S1, T4)."""
    key = '{"kid": "k", "hmac_secret": "0123456789abcdef01234567"}'
    b = f"- id: b\n  signed_identities: &m require\n  jwt_keys: [{key}]\n"
    c = f'- {{"id": "c", "signed_identities":*m, "jwt_keys": [{key}]}}\n'
    _apply(store_url, f"communities:\n- id: a\n  signed_identities: reject\n{b}{c}")
    changed = f"communities:\n- id: a\n  signed_identities: &m reject\n{b}{c}# c changed\n"
    with pytest.raises(ConfigError, match="second occurrence"):
        _apply(store_url, changed)
    stored = run_sql(store_url, "SELECT signed_identities FROM communities WHERE id = 'c'")
    assert [r["signed_identities"] for r in stored] == ["require"]


def test_the_cut_gives_each_item_of_a_plain_file() -> None:
    exported = "# a comment\ncommunities:\n  - id: a\n    jwt_keys: []\n  # between\n  - id: b\n"
    assert split_items(exported) == ["  - id: a\n    jwt_keys: []\n  # between\n", "  - id: b\n"]
    indentless = "communities:\n- id: a\n  mappings:\n  - from: x\n    to: y\n- id: b\n"
    assert split_items(indentless) == ["- id: a\n  mappings:\n  - from: x\n    to: y\n", "- id: b\n"]
    literal = (
        "communities:\n  - id: a\n    jwt_keys:\n      - kid: r\n        rsa_public_key: |\n"
        "          AB\n\n          CD\n"
    )
    assert split_items(literal) == [literal.removeprefix("communities:\n")]
    assert split_items("communities:\n") is None  # null, not a list: the whole read refuses it


@pytest.mark.parametrize(
    "text",
    [
        "communities: []\n",  # flow
        "communities: [{id: a}]\n",
        "communities:\n  - id: a\nother: 1\n",  # another top-level key
        "%YAML 1.1\n---\ncommunities:\n  - id: a\n",  # a directive
        "communities:\n  - id: a\n---\ncommunities:\n  - id: b\n",  # two documents
        "communities:\n  - &x {id: a}\n  - *x\n",  # an alias may name another item's anchor
        'communities:\n  - {"id": "a", "mappings":*x}\n',  # after a quoted flow key's colon
        "communities:\n  - id: a\n - id: b\n",  # items at two indentations
        "  communities:\n  - id: a\n",
        "x: 1\ncommunities:\n  - id: a\n",
        "",
        # YAML also breaks lines at a lone CR, NEL, LS and PS: a comment may end at one
        "communities: # c\r- id: a\n- id: b\n",
        "communities: # c\x85- id: a\n- id: b\n",
        "communities:\n- id: a # c\u2028other: 1\n",
        "communities:\n- id: a\n  name: x\u2029- id: b\n",
        "\t# a tab before a comment at the top level: YAML refuses it\ncommunities:\n- id: a\n",
        "communities:\n\t\n- id: a\n",
        "\x0c\ncommunities:\n- id: a\n",
    ],
)
def test_the_cut_refuses_what_it_is_not_sure_of(text: str) -> None:
    assert split_items(text) is None


def test_a_recorded_digest_holds_the_models_and_the_release(monkeypatch: pytest.MonkeyPatch) -> None:
    """T4: a release whose models read a text differently reads every text again."""
    text = "- id: acme\n"
    before = applied_texts.digest(text)
    schema = applied_texts.ConfigSpec.model_json_schema()
    applied_texts.reading_key.cache_clear()
    monkeypatch.setattr(
        applied_texts.ConfigSpec, "model_json_schema", classmethod(lambda cls: {**schema, "x": 1})
    )
    try:
        assert applied_texts.digest(text) != before
    finally:
        monkeypatch.undo()
        applied_texts.reading_key.cache_clear()
    assert applied_texts.digest(text) == before
