"""docs/integrators.md's snippets sign tokens the worker accepts: each
JavaScript, Python, PHP, Java and Go snippet, HS256 with the 24-character secret and RS256 with
a PKCS#8 private key, is cut out of the page, run with its real toolchain (node, python, php,
java, go: none is optional, CI installs them) and its token decided by the pipeline; the
fingerprint commands print what `keys list` shows."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.node import node_packages
from worker.core.community import prepare
from worker.core.keys import HMAC_SECRET as HMAC_KIND
from worker.core.keys import RSA_PUBLIC_KEY
from worker.core.pipeline import process_event
from worker.devtools.examples import HMAC_SECRET, HS_KID, RS_KID, community, config_yaml, public_pem
from worker.store.yaml_io import parse_yaml

HERE = Path(__file__).parent
GUIDE = HERE.parents[1] / "docs" / "integrators.md"
SNIPPET = re.compile(r"<!-- snippet: (\S+) -->\n```\w*\n(.*?)```", re.DOTALL)
RUNNERS = {".js": ["node"], ".py": [sys.executable], ".php": ["php"], ".java": ["java"], ".go": ["go", "run"]}


def snippets() -> dict[str, str]:
    return dict(SNIPPET.findall(GUIDE.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _run(name: str, tmp_path: Path, env: dict[str, str]) -> str:
    path = tmp_path / name
    path.write_text(snippets()[name], encoding="utf-8")
    runner = RUNNERS[path.suffix]
    if shutil.which(runner[0]) is None:
        pytest.fail(f"{runner[0]} is required to test docs/integrators.md's {name}")
    done = subprocess.run(
        [*runner, str(path)], capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, f"{name}: {done.stderr[-2000:]}"
    return done.stdout.strip()


def test_every_language_has_an_hs256_and_an_rs256_snippet() -> None:
    names = set(snippets())
    for language in ("js", "py", "php", "java", "go"):
        stems = {n.rsplit(".", 1)[0].lower() for n in names if n.endswith("." + language)}
        assert stems == {"hs256", "rs256"}, (language, stems)


@pytest.mark.parametrize("name", sorted(n for n in snippets() if Path(n).suffix in RUNNERS))
def test_the_snippet_s_token_is_accepted_by_the_worker(
    name: str, tmp_path: Path, private_key: rsa.RSAPrivateKey
) -> None:
    if name.endswith(".js"):
        node_packages(HERE, "jsonwebtoken")
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "private.pem").write_bytes(pem)
    rs = name.lower().startswith("rs256")
    env = {
        **os.environ,
        "SECRET": HMAC_SECRET,
        "KID": RS_KID if rs else HS_KID,
        "UUID": "v-42",
        "PRIVATE_KEY_FILE": str(tmp_path / "private.pem"),
        "NODE_PATH": str(HERE / "node_modules"),
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=mod",
    }
    token = _run(name, tmp_path, env)
    communities = prepare(parse_yaml(config_yaml(community(rsa_public_pem=public_pem(private_key)))))
    now = time.time()
    received = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    value = {"event_id": "e", "community_id": "acme", "received_at": received, "signed_identity": token}
    output = process_event(json.dumps(value).encode(), lookup=communities, now=now)
    assert output.reason is None, output.record.get("detail")
    assert output.record["verification"]["kid"] == env["KID"]


def test_the_fingerprint_commands_print_what_keys_list_shows(
    tmp_path: Path, private_key: rsa.RSAPrivateKey
) -> None:
    public = tmp_path / "public.pem"
    public.write_text(public_pem(private_key))
    script = tmp_path / "fingerprint.sh"
    script.write_text(snippets()["fingerprint.sh"])
    env = {**os.environ, "SECRET": HMAC_SECRET, "PUBLIC_KEY_FILE": str(public)}
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.split() == [
        HMAC_KIND.key(HS_KID, HMAC_SECRET).fingerprint,
        RSA_PUBLIC_KEY.key(RS_KID, public_pem(private_key)).fingerprint,
    ]
