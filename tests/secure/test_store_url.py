"""Every store URL is checked before the first connection, by one function (`check_url`) that
`db migrate`, the admin commands and `run` share: a typo is one line at once, never retried as
an outage until the start-up timeout (K8, K10)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.worker import CLI
from worker.store.db import InputError, check_url

PASSWORD = "s3cret-Pa55"


def variants(base: str, tmp_path: Path) -> dict[str, tuple[str, str]]:
    """name -> (URL, what the one line must say)."""
    user_url = base.replace("postgresql://identity@", f"postgresql://identity:{PASSWORD}@")
    return {
        "sslmode-typo": (f"{user_url}?sslmode=verify-fulll", "sslmode 'verify-fulll' is not one of"),
        "missing-root-cert": (
            f"{user_url}?sslmode=verify-full&sslrootcert={tmp_path}/nope.crt",
            f"sslrootcert {tmp_path}/nope.crt is not a file",
        ),
        "bad-port": (user_url.replace(user_url.split("@")[1].split("/")[0], "127.0.0.1:54x2"), "not a valid"),
    }


@pytest.mark.parametrize("name", ["sslmode-typo", "missing-root-cert", "bad-port"])
def test_check_url_refuses_what_no_connection_could_use(database_url: str, tmp_path: Path, name: str) -> None:
    url, says = variants(database_url, tmp_path)[name]
    with pytest.raises(InputError) as caught:
        check_url(url)
    assert says in caught.value.message and PASSWORD not in caught.value.message


def test_good_urls_pass(database_url: str, tmp_path: Path) -> None:
    cert = tmp_path / "ca.crt"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    for mode in ("disable", "prefer", "require", "verify-ca", "verify-full"):
        check_url(f"{database_url}?sslmode={mode}&sslrootcert={cert}")
    check_url(f"{database_url}?sslrootcert=system")


@pytest.mark.parametrize("name", ["sslmode-typo", "missing-root-cert"])
def test_run_and_db_migrate_give_the_same_one_line_at_once(
    database_url: str, tmp_path: Path, name: str
) -> None:
    url, says = variants(database_url, tmp_path)[name]
    env = {**os.environ, "DATABASE_URL": url, "IDENTITY_WORKER_STARTUP_TIMEOUT_SECONDS": "60",
           "IDENTITY_WORKER_METRICS_PORT": "0"}  # fmt: skip
    started = time.monotonic()
    run = subprocess.run([*CLI, "run"], env=env, capture_output=True, text=True, timeout=90)
    took = time.monotonic() - started
    migrate = subprocess.run([*CLI, "db", "migrate"], env=env, capture_output=True, text=True, timeout=90)
    assert run.returncode == 3, run.stderr  # a fatal misconfiguration at start (K10)
    assert took < 30, f"run took {took:.0f} s: retried as an outage"
    assert migrate.returncode == 2, migrate.stderr
    for result in (run, migrate):
        (line,) = result.stderr.strip().splitlines()
        assert says in line and PASSWORD not in line, line
