"""`make admin`: the configuration service ready to click through (DESIGN §10).

Expects DATABASE_URL (the Makefile starts the local stack). Migrates the store, applies the
example community of `make demo` (worker/examples.py: `acme` with an HS256 and an RS256 key, a
custom field and mappings; `openshop` in reject mode), creates a platform token and a token
for `acme`, prints the console's URL and both tokens, then runs `admin serve` until Ctrl-C.
Every step is a real command of the product.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from worker.examples import config_yaml

CLI = [sys.executable, "-m", "worker.cli.main"]


def run(*args: str, capture: bool = False) -> str:
    done = subprocess.run([*CLI, *args], capture_output=capture, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"make admin: `identity-worker {' '.join(args)}` failed: {(done.stderr or '').strip()}")
    return (done.stdout or "").strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m worker.devtools.quickstart", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL"):
        sys.exit("make admin: DATABASE_URL is not set (run it through `make admin`)")
    run("db", "migrate", capture=True)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "communities.yaml")
        config.write_text(config_yaml())
        run("config", "apply", str(config), capture=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    platform = run("admin", "token", "create", f"console-platform-{stamp}", "--platform", capture=True)
    acme = run("admin", "token", "create", f"console-acme-{stamp}", "--community", "acme", capture=True)
    url = f"http://{args.host}:{args.port}/"
    print(
        f"""
identity-worker configuration service
  console:         {url}
  API:             {url}api/v1   (OpenAPI: {url}api/v1/openapi.json, docs: {url}api/v1/docs)
  platform token:  {platform}
  acme token:      {acme}
Sign in to the console with either token; the API takes `Authorization: Bearer <token>`.
Ctrl-C stops the service (the stack stays up: `make stack-down`).
""",
        flush=True,
    )
    os.execv(CLI[0], [*CLI, "admin", "serve", "--host", args.host, "--port", str(args.port)])


if __name__ == "__main__":
    main()
