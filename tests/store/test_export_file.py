"""`config export`: `-o FILE` writes a file only its owner can read, whatever was there before
(an existing world-readable file does not keep its mode: exports may hold HMAC secrets);
the export is streamed, a batch of communities at a time, as PyYAML's own text (T4)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.support.store import Cli
from worker.core.config import ConfigError, ConfigSpec, validate_spec
from worker.core.storable import unstorable
from worker.devtools import examples
from worker.store import repository as repo
from worker.store import yaml_io
from worker.store.yaml_io import dump_communities, export_header, parse_yaml


@pytest.mark.parametrize("mode", [0o644, 0o666, 0o444])
def test_export_replaces_an_existing_file_with_a_private_one(cli: Cli, tmp_path: Path, mode: int) -> None:
    target = tmp_path / "backup.yaml"
    target.write_text("old content that is longer than the export\n" * 10)
    target.chmod(mode)
    result = cli("config", "export", "--include-secrets", "-o", str(target))
    assert (result.code, result.out, result.err) == (0, "", "")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert target.read_text() == "communities: []\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.yaml"], "no temporary file is left"


def test_an_export_that_cannot_be_written_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "backup.yaml"
    result = cli("config", "export", "-o", str(target))
    assert result.code != 0 and result.err.count("\n") == 1 and "cannot write" in result.err
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- streamed text (T4)

#: Text the store takes (core/storable.py: no control character, no surrogate).
_STORABLE = st.characters(exclude_categories=("Cc", "Cs"))
_LABELS = st.text(_STORABLE, min_size=1, max_size=255)
_REGEXES = st.sampled_from([None, "C[0-9]{6}", "^a|b$", "it's: #1", "a" * 600 + " b" * 200, "[ ]+", "é|ü"])


@given(
    labels=st.lists(_LABELS, min_size=1, max_size=3),
    regex=_REGEXES,
    source=st.text(_STORABLE, min_size=1, max_size=64),
    community_id=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    secret=st.from_regex(r"[0-9a-f]{24}", fullmatch=True),
    include_secrets=st.booleans(),
)
@example(["x\u2028y", "é \u2029", " lead"], None, "a b", "c", "0" * 24, True)  # YAML's other line breaks
@example(
    ['it\'s: #1 "q"', "- x", "~"], "a" * 600 + " b" * 200, "k: v", "012", "0" * 24, False
)  # quoting, folding
@settings(max_examples=150)
def test_the_streamed_export_is_the_text_pyyaml_writes(
    labels: list[str], regex: str | None, source: str, community_id: str, secret: str, include_secrets: bool
) -> None:
    """`config export` writes each community with its own emitter (T4: PyYAML's pure-Python
    one took 172 s for 50 000); its text is exactly PyYAML's, whatever the values, and reads
    back as the same configuration."""
    fields = [
        {"key": f"f{i}", "label": label, **({"regex": regex} if regex is not None else {})}
        for i, label in enumerate(labels)
    ]
    community = examples.community(
        community_id,
        hmac_keys={"k1": secret},
        custom_fields=fields,
        mappings=[{"from": f"extra_values.{source}", "to": "custom_fields.f0"}, examples.NOTES_MAPPING],
    )
    # As the store reads its rows (FROM_STORE): text stored before the one text rule (A7) may
    # still hold line breaks and control characters, and must export all the same.
    config = validate_spec(
        ConfigSpec, {"communities": [community, examples.unsigned_community("z")]}, stored=True
    )
    streamed = dump_communities(config.communities, include_secrets=include_secrets)
    data = [yaml_io._community_data(c, include_secrets) for c in config.communities]
    assert "communities:\n" + streamed == yaml_io._dumped({"communities": data})
    # PyYAML itself reads U+0085, U+2028 and U+2029 back as line breaks (seen, left alone: the
    # exporter before T4 wrote the same text); every other text round-trips.
    if include_secrets and not any(ch in "".join([*labels, source]) for ch in "\x85\u2028\u2029"):
        text = export_header(has_hmac=True, include_secrets=True, empty=False) + streamed
        if all(unstorable(t) is None for t in [*labels, source]) and (
            regex is None or unstorable(regex, multi_line=True) is None
        ):
            assert parse_yaml(text) == config
        else:  # text stored before the one text rule (A7) exports, but is refused back in
            with pytest.raises(ConfigError, match="it cannot be stored"):
                parse_yaml(text)


def test_export_streams_batches_of_the_store(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of EXPORT_BATCH communities from one snapshot: the file is the same as one
    written whole, and applies back to the same store."""
    monkeypatch.setattr(repo, "EXPORT_BATCH", 2)
    communities = [examples.community(f"c{i}", hmac_keys={"k": f"{i:024x}"}) for i in range(5)]
    text = yaml.safe_dump({"communities": [*communities, examples.unsigned_community("z")]}, sort_keys=False)
    assert cli("config", "apply", "-", stdin=text).code == 0
    exported = cli("config", "export", "--include-secrets")
    assert exported.code == 0 and exported.err == ""
    config = parse_yaml(exported.out)
    assert [c.id for c in config.communities] == ["c0", "c1", "c2", "c3", "c4", "z"]
    assert exported.out == export_header(has_hmac=True, include_secrets=True, empty=False) + dump_communities(
        config.communities, include_secrets=True
    )
    again = cli("config", "apply", "-", stdin=exported.out)
    assert (again.code, again.out) == (0, "no changes\napplied: 0 added, 0 changed, 0 removed\n")


def test_export_to_a_named_pipe_writes_into_it_and_leaves_it_a_pipe(cli: Cli, tmp_path: Path) -> None:
    """`-o` naming what is not a regular file (a FIFO here; `/dev/null` and `/dev/stdout` alike)
    is written as it is: the atomic rename of a private file once replaced `/dev/null` itself
    with a regular file, breaking every program on the machine that wrote to it."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_text()), daemon=True)
    reader.start()
    result = cli("config", "export", "-o", str(pipe))
    reader.join(timeout=30)
    assert (result.code, result.err) == (0, "")
    assert stat.S_ISFIFO(os.stat(pipe).st_mode), "the pipe is still a pipe"
    assert received == ["communities: []\n"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"], "no temporary file is left"
