"""`config export -o FILE` writes a file only its owner can read, whatever was there before
(issue 11: an existing world-readable file kept its mode, and exports may hold HMAC secrets)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.support.store import Cli


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
