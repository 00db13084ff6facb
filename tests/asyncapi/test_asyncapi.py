"""schemas/asyncapi.yaml: valid for the official AsyncAPI parser, and in step
with the models and settings it describes.

The parser is `@asyncapi/parser` from npm, pinned in package-lock.json beside this file, run by
validate.js (`npm ci` once when node_modules is missing). Needs node and npm; never skips: a
machine without them fails here loudly, because CI must run it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.node import node_packages
from worker.core.contracts import CONTRACT_MODELS
from worker.core.reasons import Reason
from worker.settings import Settings, TopicNames

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
SCHEMAS = ROOT / "schemas"
DOCUMENT = SCHEMAS / "asyncapi.yaml"
OUTPUT_CHANNELS = {"enriched": "enriched_topic", "rejected": "rejected_topic", "dlq": "dlq_topic"}


@pytest.fixture(scope="session")
def validator() -> Path:
    node_packages(HERE, "@asyncapi/parser")
    return HERE / "validate.js"


def parse(validator: Path, document: Path) -> tuple[int, dict[str, Any]]:
    result = subprocess.run(
        ["node", str(validator), str(document)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=HERE,
        env={**os.environ, "SCARF_ANALYTICS": "false"},
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


@pytest.fixture(scope="session")
def parsed(validator: Path) -> dict[str, Any]:
    code, report = parse(validator, DOCUMENT)
    assert code == 0, json.dumps(report["diagnostics"], indent=1)
    return report


def test_the_official_parser_accepts_the_document_without_warnings(parsed: dict[str, Any]) -> None:
    assert parsed["parser"] == "3.6.3"
    worse = [d for d in parsed["diagnostics"] if d["severity"] in ("Error", "Warning")]
    assert not worse, worse


def test_the_four_channels_are_the_worker_topics(parsed: dict[str, Any]) -> None:
    topics = TopicNames()
    expected = {
        "raw": topics.input_topic,
        **{channel: getattr(topics, field) for channel, field in OUTPUT_CHANNELS.items()},
    }
    assert {cid: channel["address"] for cid, channel in parsed["channels"].items()} == expected
    for channel in parsed["channels"].values():
        assert channel["kafkaTopic"] == channel["address"]


def test_every_message_is_a_model_schema_file_and_every_schema_file_a_message(parsed: dict[str, Any]) -> None:
    """Payloads reference the generated files (never copies): the parser's resolved view has
    each model's fields and, for rejections, the closed set of reasons (DESIGN §2.3)."""
    document = yaml.safe_load(DOCUMENT.read_text())
    referenced = {m["payload"]["$ref"] for m in document["components"]["messages"].values()}
    assert referenced == {f"./{path.name}" for path in SCHEMAS.glob("*.schema.json")}
    messages = {m["name"]: m for channel in parsed["channels"].values() for m in channel["messages"].values()}
    assert set(messages) == {model.__name__ for model in CONTRACT_MODELS.values()}
    for model in CONTRACT_MODELS.values():
        fields = sorted(field.alias or name for name, field in model.model_fields.items())
        assert messages[model.__name__]["payloadProperties"] == fields, model.__name__
        assert messages[model.__name__]["payloadTitle"] == model.__name__
        assert messages[model.__name__]["keyTypes"] == ["string", "null"]  # K1: the input's key
        assert messages[model.__name__]["headersType"] == "object"  # K1: headers carried over
    assert messages["Rejection"]["reasons"] == [reason.value for reason in Reason]


def test_operations_are_what_the_worker_does_and_readers_read_committed(parsed: dict[str, Any]) -> None:
    topics, settings = TopicNames(), Settings.model_fields
    operations = {(op["action"], *op["channel"]) for op in parsed["operations"].values()}
    assert operations == {("receive", topics.input_topic)} | {("send", name) for name in topics.outputs()}
    document = yaml.safe_load(DOCUMENT.read_text())
    (receive,) = [op for op in document["operations"].values() if op["action"] == "receive"]
    assert receive["bindings"]["kafka"]["groupId"]["default"] == settings["group_id"].default
    assert receive["x-kafka-isolation-level"] == "read_committed"  # K11
    for channel in OUTPUT_CHANNELS:
        assert document["channels"][channel]["x-kafka-isolation-level"] == "read_committed"  # K2


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("./rejection.schema.json", "./missing.schema.json"), "missing.schema.json"),
        (("action: send", "action: publish"), "action"),
        (("address: identity.dlq", "adress: identity.dlq"), "adress"),
    ],
    ids=["dangling-schema-file", "asyncapi-2-action", "misspelt-field"],
)
def test_the_parser_refuses_a_broken_document(
    validator: Path, tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    for path in SCHEMAS.glob("*.schema.json"):
        shutil.copy(path, tmp_path / path.name)
    text = DOCUMENT.read_text()
    assert change[0] in text
    (tmp_path / "asyncapi.yaml").write_text(text.replace(change[0], change[1], 1))
    code, report = parse(validator, tmp_path / "asyncapi.yaml")
    errors = [d for d in report["diagnostics"] if d["severity"] == "Error"]
    assert code == 1 and errors
    assert any(expected in json.dumps(d) for d in errors), errors
