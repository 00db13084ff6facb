"""The client library's lines name their logger and come at the level they deserve; the idle
progress line is rare (DESIGN §7)."""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiokafka.consumer.group_coordinator as group_coordinator
import pytest
import structlog
from aiokafka import errors

from tests.support.worker import new_topics, own_store, start_worker, wait_ready
from worker.ops import logging as ops_logging
from worker.ops.logging import ClientLevels, ProgressGate, configure_logging

COORDINATOR = "aiokafka.consumer.group_coordinator"


def record(msg: str, level: int, *args: object, name: str = COORDINATOR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_the_templates_are_aiokafkas_own() -> None:
    """Matching is by template: they must still be what the installed aiokafka logs."""
    source = inspect.getsource(group_coordinator)
    assert f'"{ClientLevels.LOOKUP_FAILED}"' in source and f'"{ClientLevels.MARKED_DEAD}"' in source
    assert group_coordinator.log.name == COORDINATOR


@pytest.fixture
def levels() -> Iterator[ClientLevels]:
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.INFO)
    yield ClientLevels()
    root.setLevel(before)


def test_coordinator_discovery_is_info_at_start_and_a_warning_once_started(levels: ClientLevels) -> None:
    lookup = record(ClientLevels.LOOKUP_FAILED, logging.ERROR, errors.CoordinatorNotAvailableError())
    dead = record(ClientLevels.MARKED_DEAD, logging.WARNING, 1, "identity-worker")
    for line in (lookup, dead):
        assert levels.filter(line) and line.levelno == logging.INFO and line.levelname == "INFO"
    levels.started()
    lookup = record(ClientLevels.LOOKUP_FAILED, logging.ERROR, errors.CoordinatorNotAvailableError())
    dead = record(ClientLevels.MARKED_DEAD, logging.WARNING, 1, "identity-worker")
    for line in (lookup, dead):
        assert levels.filter(line) and line.levelno == logging.WARNING


def test_other_lines_keep_their_level(levels: ClientLevels) -> None:
    fatal = record(ClientLevels.LOOKUP_FAILED, logging.ERROR, errors.GroupAuthorizationFailedError())
    other = record("Heartbeat failed: %r", logging.ERROR, ValueError())
    elsewhere = record(ClientLevels.MARKED_DEAD, logging.WARNING, 1, "g", name="aiokafka.other")
    for line, level in ((fatal, logging.ERROR), (other, logging.ERROR), (elsewhere, logging.WARNING)):
        assert levels.filter(line) and line.levelno == level


def test_a_line_made_info_is_dropped_below_the_configured_level(levels: ClientLevels) -> None:
    logging.getLogger().setLevel(logging.WARNING)
    assert not levels.filter(record(ClientLevels.MARKED_DEAD, logging.WARNING, 1, "g"))


@pytest.fixture
def configured() -> Iterator[None]:
    """Undoes the test's configure_logging (it writes to the test's captured stderr)."""
    saved, root = structlog.get_config(), logging.getLogger()
    handlers, level = root.handlers[:], root.level
    aiokafka_level = logging.getLogger("aiokafka").level
    yield
    structlog.configure(**saved)
    root.handlers[:], root.level = handlers, level
    logging.getLogger("aiokafka").setLevel(aiokafka_level)


@pytest.mark.usefixtures("configured")
def test_client_lines_carry_their_logger_name_and_new_level(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    ops_logging._CLIENT_LEVELS.starting = True  # a new process
    try:
        logging.getLogger(COORDINATOR).error(
            ClientLevels.LOOKUP_FAILED, errors.CoordinatorNotAvailableError()
        )
        logging.getLogger("aiokafka.conn").warning("Connection %s closed", "x")
    finally:
        ops_logging._CLIENT_LEVELS.starting = False
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert [(line["logger"], line["level"]) for line in lines] == [
        (COORDINATOR, "info"),
        ("aiokafka.conn", "warning"),
    ]


def test_the_progress_gate_speaks_on_change_or_after_the_idle_interval() -> None:
    gate = ProgressGate(idle_every=60)
    assert gate.due((0, 0, []), 0)
    assert not gate.due((0, 0, []), 5) and not gate.due((0, 0, []), 59)
    assert gate.due((10, 0, []), 60.5)  # processed changed
    assert not gate.due((10, 0, []), 65)
    assert gate.due((10, 3, []), 66)  # lag changed
    assert gate.due((10, 3, ["store: degraded"]), 67)  # readiness changed
    assert gate.due((10, 3, ["store: degraded"]), 127)  # a minute of nothing


async def test_an_idle_worker_logs_one_progress_line_not_one_per_interval(
    kafka_bootstrap: str, database_url: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    store = own_store(database_url, "i26p", tmp_path)
    topics = await new_topics(kafka_bootstrap, unique_topic("i26-idle"), 1)
    worker = start_worker(
        tmp_path, "idle", kafka_bootstrap, store.url, topics, progress_interval_seconds="0.2"
    )
    try:
        await wait_ready(worker)
        time.sleep(4)  # 20 intervals with nothing to say
    finally:
        assert worker.stop() == 0, worker.tail()
    events = [
        json.loads(line)["event"] for line in worker.log.read_text().splitlines() if line.startswith("{")
    ]
    progress = [event for event in events if event.startswith("progress:")]
    assert 1 <= len(progress) <= 3, progress
