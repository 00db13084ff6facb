"""The downstream contract reads on its own: every field of every published
JSON Schema is described, each schema carries examples the pipeline made, the examples validate
against their schema, and the AsyncAPI document's messages carry the same examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from worker.core.contracts import CONTRACT_MODELS
from worker.devtools.schemas import ASYNCAPI_MESSAGES, SCHEMA_DIR, asyncapi_with_examples

ROOT = Path(__file__).resolve().parents[2]


def _schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


def _undescribed(schema: dict[str, Any], where: str) -> list[str]:
    missing = [
        f"{where}.{name}"
        for name, prop in schema.get("properties", {}).items()
        if not prop.get("description")
    ]
    for name, sub in schema.get("$defs", {}).items():
        missing += _undescribed(sub, f"{where}/$defs/{name}")
    return missing


@pytest.mark.parametrize("name", sorted(CONTRACT_MODELS))
def test_every_field_of_every_schema_is_described(name: str) -> None:
    schema = _schema(name)
    assert _undescribed(schema, name) == []
    assert len(schema["properties"]) >= 6


@pytest.mark.parametrize("name", sorted(CONTRACT_MODELS))
def test_each_schema_s_examples_validate_against_it(name: str) -> None:
    schema = _schema(name)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    assert schema["examples"], name
    for example in schema["examples"]:
        validator.validate(example)


def test_the_enriched_example_shows_every_field_agents_use() -> None:
    signed, unsigned = _schema("enriched_identity")["examples"]
    assert (signed["signed"], unsigned["signed"], unsigned["verification"]) == (True, False, None)
    example = signed
    assert example["identity_group"]["emails"] == ["ada@example.org"]
    assert example["custom_fields"] == {"customer_id": "C123456"}
    assert example["verification"]["kid"] == "acme_2026"


def test_the_asyncapi_messages_carry_the_schemas_examples() -> None:
    document = yaml.safe_load((SCHEMA_DIR / "asyncapi.yaml").read_text(encoding="utf-8"))
    for name, message in ASYNCAPI_MESSAGES.items():
        schema = _schema(name)
        shown = [example["payload"] for example in document["components"]["messages"][message]["examples"]]
        assert shown == schema["examples"], message
        for payload in shown:
            jsonschema.Draft202012Validator(schema).validate(payload)


def test_a_bad_example_is_refused_by_the_schema() -> None:
    """The check can fail: a rejection with a reason outside the closed set does not validate."""
    schema = _schema("rejection")
    bad = {**schema["examples"][0], "reason": "nope"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(bad)


def test_the_examples_block_needs_its_marker() -> None:
    with pytest.raises(ValueError, match="no '# examples of rawEvent' line"):
        asyncapi_with_examples("components: {}\n", {name: [] for name in ASYNCAPI_MESSAGES})
