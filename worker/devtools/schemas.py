"""Writes `schemas/*.schema.json` from the contract models (DESIGN §2) and the admin API's
OpenAPI document (DESIGN §10, A1); `--check` fails when stale.

Each JSON Schema carries `examples`: records the pipeline itself makes from the example
community (worker/devtools/examples.py) at a fixed clock — so they are what the worker publishes, and a
test validates them against their schema. The same examples are written into the AsyncAPI
document's messages, between its `# examples of <message>` marker lines."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

import yaml

from worker.core.community import prepare
from worker.core.contracts import CONTRACT_MODELS, Source
from worker.core.keys import sign_token
from worker.core.pipeline import process_event
from worker.core.records import dead_letter
from worker.core.times import rfc3339_seconds
from worker.devtools.examples import (
    COMMUNITY_ID,
    HMAC_SECRET,
    HS_KID,
    UNSIGNED_COMMUNITY_ID,
    community,
    config_yaml,
    unsigned_community,
)
from worker.store.yaml_io import parse_yaml

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
OPENAPI_FILE = "admin-api.openapi.json"


#: The examples' clock and the events' received_at (fixed: the files must not change by themselves).
EXAMPLE_TIME: Final = "2026-11-24T10:00:00Z"
#: The AsyncAPI message of each contract (schemas/asyncapi.yaml's components.messages).
ASYNCAPI_MESSAGES: Final = {
    "raw_event": "rawEvent",
    "enriched_identity": "enrichedIdentity",
    "rejection": "rejection",
    "dead_letter": "deadLetter",
}
ASYNCAPI_FILE: Final = "asyncapi.yaml"


def example_records() -> dict[str, list[dict[str, Any]]]:
    """Per contract, example records: the raw events (signed, unsigned) and what the pipeline
    makes of them and of a token that expires too soon, plus a dead letter."""
    now = rfc3339_seconds(EXAMPLE_TIME)
    communities = prepare(parse_yaml(config_yaml(community(rsa_kid=None), unsigned_community())))
    claims = {"uuid": "v-42", "firstname": "Ada", "lastname": "Lovelace", "email": "ada@example.org"}
    extra = {"customer_id": "C123456", "mobile": "+44 7700 900123"}
    good = sign_token({**claims, "extra_values": extra, "exp": int(now) + 7200}, HMAC_SECRET, "HS256", HS_KID)
    short = sign_token({**claims, "exp": int(now) + 1800}, HMAC_SECRET, "HS256", HS_KID)
    base = {"community_id": COMMUNITY_ID, "received_at": EXAMPLE_TIME, "gateway": {"name": "gw-eu-1"}}
    raw = [
        {"event_id": "e-1", **base, "signed_identity": good},
        {"event_id": "e-2", **base, "community_id": UNSIGNED_COMMUNITY_ID, "identity": {"uuid": "v-7"}},
        {"event_id": "e-3", **base, "signed_identity": short},
    ]
    records: dict[str, list[dict[str, Any]]] = {"raw_event": raw, "enriched_identity": [], "rejection": []}
    for offset, event in enumerate(raw, start=42):
        value = json.dumps(event).encode()
        output = process_event(
            value, lookup=communities, now=now + 0.25, source=Source("identity.raw", 0, offset)
        )
        records[
            output.record["outcome"].replace("enriched", "enriched_identity").replace("rejected", "rejection")
        ].append(json.loads(output.to_json()))
    bug = ZeroDivisionError("division by zero")  # a bug's record, without a traceback of this file
    value = json.dumps(raw[1]).encode()
    records["dead_letter"] = [
        json.loads(
            dead_letter(value, bug, now=now, source=Source("identity.raw", 1, 7), attempts=3).to_json()
        )
    ]
    return records


def render() -> dict[str, str]:
    files = {}
    examples = example_records()
    for name, model in CONTRACT_MODELS.items():
        schema = model.model_json_schema(
            by_alias=True, mode="serialization" if name != "raw_event" else "validation"
        )
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"{name}.schema.json",
            **schema,
            "examples": examples[name],
        }
        files[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    files[OPENAPI_FILE] = json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
    files[ASYNCAPI_FILE] = asyncapi_with_examples(
        (SCHEMA_DIR / ASYNCAPI_FILE).read_text(encoding="utf-8"), examples
    )
    return files


def asyncapi_with_examples(text: str, examples: dict[str, list[dict[str, Any]]]) -> str:
    """The hand-written AsyncAPI document with each message's `examples` block (between its
    `# examples of <message>` and `# end of examples` lines) rewritten from `examples`."""
    for name, message in ASYNCAPI_MESSAGES.items():
        begin, end = f"      # examples of {message}\n", "      # end of examples\n"
        head, found, rest = text.partition(begin)
        if not found:
            raise ValueError(f"{ASYNCAPI_FILE}: no '# examples of {message}' line")
        _, _, tail = rest.partition(end)
        items = [{"name": f"{name}-{i + 1}", "payload": record} for i, record in enumerate(examples[name])]
        block = yaml.safe_dump({"examples": items}, sort_keys=False, width=10_000, allow_unicode=True)
        text = head + begin + "".join(f"      {line}\n" for line in block.splitlines()) + end + tail
    return text


def openapi_document() -> dict[str, object]:
    """The document `admin serve` publishes at /api/v1/openapi.json (no database needed)."""
    from worker.admin.app import create_app

    return create_app("postgresql://unused").openapi()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.devtools.schemas", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if schemas/ differs from the models")
    parser.add_argument("--out", type=Path, default=SCHEMA_DIR)
    args = parser.parse_args(argv)
    stale = []
    for filename, text in render().items():
        path = args.out / filename
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            stale.append(filename)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print(f"schemas out of date: {', '.join(stale)}; run `make schemas`", file=sys.stderr)
        return 1
    print(("stale: " if args.check else "written: ") + (", ".join(stale) or "none (up to date)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
