"""The published JSON Schemas (DESIGN §2, §9) are generated from the models and kept in sync."""

from __future__ import annotations

import json

import jsonschema

from worker.core.contracts import CONTRACT_MODELS
from worker.devtools.schemas import OPENAPI_FILE, SCHEMA_DIR, openapi_document, render


def test_checked_in_schemas_match_the_models() -> None:
    for filename, text in render().items():
        path = SCHEMA_DIR / filename
        assert path.exists(), f"{filename} missing: run `make schemas`"
        assert path.read_text(encoding="utf-8") == text, f"{filename} is stale: run `make schemas`"


def test_every_contract_has_a_schema_file() -> None:
    assert {f"{name}.schema.json" for name in CONTRACT_MODELS} == {
        p.name for p in SCHEMA_DIR.glob("*.schema.json")
    }


def test_the_committed_openapi_document_is_the_one_the_service_publishes() -> None:
    """DESIGN §10, A1: the document is generated from the models and kept in schemas/."""
    document = json.loads((SCHEMA_DIR / OPENAPI_FILE).read_text(encoding="utf-8"))
    assert document == openapi_document()
    assert "/api/v1/communities/{community_id}/keys" in document["paths"]
    assert "bearer" in json.dumps(document["components"]["securitySchemes"]).lower()


def test_schema_rejects_a_rejection_with_an_unknown_reason() -> None:
    """The closed set of reasons (DESIGN §2.3) is part of the published schema."""
    schema = json.loads((SCHEMA_DIR / "rejection.schema.json").read_text())
    record = {
        "outcome": "rejected",
        "event_id": "e",
        "community_id": "c",
        "reason": "expiry_too_soon",
        "detail": "d",
        "action": "block",
        "received_at": None,
        "processed_at": "2026-11-24T10:00:00Z",
        "raw": "{}",
        "raw_encoding": "utf-8",
        "source": None,
    }
    jsonschema.validate(record, schema)
    record["reason"] = "something_else"
    try:
        jsonschema.validate(record, schema)
    except jsonschema.ValidationError:
        return
    raise AssertionError("an unknown reason passed the schema")
