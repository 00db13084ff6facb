"""Secrets stay secret (DESIGN §7): the one URL/DSN redactor, for a whole DSN and for log text.

Settings, logs and the store's messages once had a redactor each; these cases are the union
of what each of them had to get right, so none of the three callers can regress alone.
"""

from __future__ import annotations

import pytest

from worker.core.redaction import redact_dsn
from worker.ops.logging import scrub
from worker.settings import load_settings

SECRET = "hunter2"


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://identity:hunter2@db/identity", "postgresql://identity:***@db/identity"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://h:5432/db", "postgresql://h:5432/db"),
        ("postgresql://:hunter2@h/db", "postgresql://:***@h/db"),
        ("postgresql://u:p@hunter2@h:5432/db", "postgresql://u:***@h:5432/db"),  # unencoded @
        ("postgresql://u:p/hunter2@h/db", "postgresql://u:***@h/db"),  # unencoded /
        ("postgresql://u:hunter2@h/db?x=me@example.com", "postgresql://u:***@h/db?x=me@example.com"),
        (
            "postgresql://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem&SSLPassword=hunter2",
            "postgresql://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem&SSLPassword=***",
        ),
        (
            "postgresql://u@h/db?password=hunter2&sslmode=require",
            "postgresql://u@h/db?password=***&sslmode=require",
        ),
    ],
)
def test_a_dsn_keeps_everything_but_its_secrets(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://identity:hunter2@db/identity",
        "postgresql://u:p@hunter2@h/db",
        "postgresql://u:p/hunter2@h/db",
        "postgresql://u@h/db?sslpassword=hunter2",
    ],
)
def test_settings_and_logs_hide_the_same_secrets(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", dsn)
    assert SECRET not in (load_settings().redacted_dsn() or "")
    line = scrub(f"cannot connect to {dsn} (refused), retrying")
    assert SECRET not in line and line.startswith("cannot connect to postgresql://")
    assert line.endswith(" (refused), retrying")
