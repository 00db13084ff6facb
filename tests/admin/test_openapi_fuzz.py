"""A1: the published OpenAPI document fuzzed by schemathesis against the running service:
no 5xx, and every answer (status, content type, headers, body) matches the document.

Bounded: a fixed seed and 15 examples per operation (~600 requests, ~10-20 s here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.admin import Service

pytestmark = pytest.mark.integration

SCHEMATHESIS = str(Path(sys.executable).with_name("st"))
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    )
)


@pytest.mark.parametrize("who", ["platform", "acme"])
def test_schemathesis_finds_no_5xx_and_no_answer_outside_the_document(
    service: Service, who: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            f"{service.url}/api/v1/openapi.json",
            "--header",
            f"Authorization: Bearer {service.tokens[who]}",
            "--checks",
            CHECKS,
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "15",
            "--seed",
            "14",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--generation-database",
            "none",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    summary = done.stdout[done.stdout.find("SUMMARY") :]
    print(f"\nschemathesis ({who} token):\n{summary}")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert generated is not None and generated[1] == generated[2] and int(generated[1]) > 300, summary
    assert "Traceback" not in service.log_text() and '"status": 500' not in service.log_text()
