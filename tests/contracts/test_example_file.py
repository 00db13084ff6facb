"""examples/communities.yaml is worker/devtools/examples.py's example, in sync, and it
is a configuration every command accepts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from worker.devtools.examples import HMAC_SECRET, HS_KID, example_file

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "communities.yaml"


def test_the_example_file_is_generated_from_worker_examples() -> None:
    assert EXAMPLE.read_text(encoding="utf-8") == example_file(), (
        "examples/communities.yaml is stale: python -m worker.devtools.examples > examples/communities.yaml"
    )


def test_a_token_signed_as_its_header_says_verifies_against_it() -> None:
    cli = [sys.executable, "-m", "worker.cli.main"]
    signed = subprocess.run(
        [*cli, "token", "sign", "--kid", HS_KID, "--hmac-secret", HMAC_SECRET, "--claims", '{"uuid": "v-1"}'],
        capture_output=True,
        text=True,
        check=True,
    )
    verified = subprocess.run(
        [*cli, "token", "verify", "--config", str(EXAMPLE), "--community", "acme", signed.stdout.strip()],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0 and verified.stdout.splitlines()[-1] == "accepted", verified.stdout
