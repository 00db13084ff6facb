"""Writes `schemas/*.schema.json` from the contract models (DESIGN §2) and the admin API's
OpenAPI document (DESIGN §10, A1); `--check` fails when stale."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from worker.core.contracts import CONTRACT_MODELS

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
OPENAPI_FILE = "admin-api.openapi.json"


def render() -> dict[str, str]:
    files = {}
    for name, model in CONTRACT_MODELS.items():
        schema = model.model_json_schema(
            by_alias=True, mode="serialization" if name != "raw_event" else "validation"
        )
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"{name}.schema.json",
            **schema,
        }
        files[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    files[OPENAPI_FILE] = json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
    return files


def openapi_document() -> dict[str, object]:
    """The document `admin serve` publishes at /api/v1/openapi.json (no database needed)."""
    from worker.admin.app import create_app

    return create_app("postgresql://unused").openapi()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.schemas", description=__doc__)
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
