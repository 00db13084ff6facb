"""Log lines never carry a token, an HMAC secret or a DSN password, yet still name the topics
and producers they are about (DESIGN §7, "Secrets stay secret")."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from worker.ops.logging import IDENTIFIER_KEYS, configure_logging, scrub_event
from worker.settings import TopicNames

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJ1dWlkIjoidmlzaXRvci03In0.c2lnbmF0dXJlLWJ5dGVz"
SECRET = "0123456789abcdef01234567"
DOTTED = "acme-prod.identity.enriched"  # token-shaped: two 8+ character segments and a dot


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """`configure_logging` replaces process-wide state; put back what pytest and others had."""
    root, aiokafka = logging.getLogger(), logging.getLogger("aiokafka")
    handlers, root_level, aiokafka_level = root.handlers[:], root.level, aiokafka.level
    config = structlog.get_config()
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(root_level)
        aiokafka.setLevel(aiokafka_level)
        structlog.configure(**config)
        structlog.contextvars.clear_contextvars()


def _scrubbed(**fields: Any) -> dict[str, Any]:
    return scrub_event(None, "info", dict(fields))


def test_token_secret_and_password_are_removed_from_free_text() -> None:
    event = _scrubbed(
        event="processing raised",
        error=f"bad {TOKEN} with key {SECRET}",
        database="postgresql://identity:hunter2@db/identity",
    )
    text = json.dumps(event)
    assert TOKEN not in text and SECRET not in text and "hunter2" not in text
    assert "<token>" in event["error"] and "<redacted>" in event["error"]
    assert event["database"] == "postgresql://identity:***@db/identity"


def test_only_these_keys_escape_scrubbing() -> None:
    """Exactly the names the operator chose: the four topic settings, a record's topic, the
    group, transactional and client ids; and a client library's logger name (a module path the
    code chose, never data). Widening the exemption (say to "error") must be a
    deliberate edit of this rule too."""
    operator_names = {"topic", *TopicNames.model_fields, "group_id", "transactional_id", "client_id"}
    assert {*operator_names, "logger"} == IDENTIFIER_KEYS


@pytest.mark.parametrize("key", sorted(IDENTIFIER_KEYS))
def test_names_the_operator_chose_are_kept(key: str) -> None:
    assert _scrubbed(**{key: DOTTED})[key] == DOTTED


def test_the_same_dotted_text_elsewhere_is_still_redacted() -> None:
    assert _scrubbed(detail=DOTTED)["detail"] == "<token>"


@pytest.mark.usefixtures("restored_logging")
def test_configured_logger_writes_scrubbed_json_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("info")
    structlog.get_logger("test").info("member started", transactional_id=DOTTED, error=f"x {TOKEN}")
    logging.getLogger("aiokafka.test").warning("retrying %s", TOKEN)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["transactional_id"] == DOTTED and lines[0]["error"] == "x <token>"
    assert lines[1]["event"] == "retrying <token>"
    assert TOKEN not in stream.getvalue()
