"""`make admin`: the configuration service ready to click through, with a worker behind it
(DESIGN §10; the newcomer's first hour).

Expects DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS (the Makefile starts the local stack).
Migrates the store, applies the example community of `make demo` (worker/devtools/examples.py: `acme`
with an HS256 and an RS256 key, a custom field and mappings; `openshop` in reject mode),
creates the topics, a platform token and a token for `acme`, starts a worker (`run`, its log in
a file) and `admin serve`, and prints the console's URL, both tokens, the example HS256 secret,
a sample token signed with it and the one-line command that sends example events — so the keys
list shows usage (L2) and Health fills (L5). Ctrl-C stops both. Every step is a real command
of the product.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from worker.core.keys import sign_token
from worker.devtools.demo import free_port
from worker.devtools.examples import COMMUNITY_ID, HMAC_SECRET, HS_KID, config_yaml

CLI = [sys.executable, "-m", "worker.cli.main"]
#: The sample token's claims: what a website would put in it (DESIGN §2.1).
SAMPLE_CLAIMS = {"uuid": "v-1", "firstname": "Ada", "extra_values": {"customer_id": "C123456"}}


def run(*args: str, capture: bool = False, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([*CLI, *args], capture_output=capture, text=True, check=False, env=env)
    if done.returncode != 0:
        sys.exit(f"make admin: `identity-worker {' '.join(args)}` failed: {(done.stderr or '').strip()}")
    return (done.stdout or "").strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m worker.devtools.quickstart", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--worker-log", type=Path, help="the worker's log (default: a temporary file)")
    args = parser.parse_args(argv)
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        if not os.environ.get(name):
            sys.exit(f"make admin: {name} is not set (run it through `make admin`)")
    run("db", "migrate", capture=True)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "communities.yaml")
        config.write_text(config_yaml())
        run("config", "apply", str(config), capture=True)
    run("topics", "create", capture=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    platform = run("admin", "token", "create", f"console-platform-{stamp}", "--platform", capture=True)
    acme = run("admin", "token", "create", f"console-acme-{stamp}", "--community", "acme", capture=True)
    log = args.worker_log or Path(tempfile.mkstemp(prefix="identity-worker-", suffix=".log")[1])
    # Its own metrics port: another worker on this machine may hold the default one.
    worker_env = {**os.environ, "IDENTITY_WORKER_METRICS_PORT": str(free_port())}
    with log.open("wb") as log_file:
        worker = subprocess.Popen([*CLI, "run"], env=worker_env, stdout=log_file, stderr=log_file)
    service = subprocess.Popen([*CLI, "admin", "serve", "--host", args.host, "--port", str(args.port)])
    now = int(time.time())
    sample = sign_token({**SAMPLE_CLAIMS, "iat": now, "exp": now + 7200}, HMAC_SECRET, "HS256", HS_KID)
    url = f"http://{args.host}:{args.port}/"
    print(
        f"""
identity-worker configuration service, with a worker
  console:         {url}
  API:             {url}api/v1   (OpenAPI: {url}api/v1/openapi.json, docs: {url}api/v1/docs)
  platform token:  {platform}
  acme token:      {acme}
  worker:          pid {worker.pid}, log {log}
Sign in to the console with either token; the API takes `Authorization: Bearer <token>`.

The example community {COMMUNITY_ID!r} signs with key {HS_KID!r}, HS256 secret {HMAC_SECRET}
(an example value: the HMAC key is those 24 characters; docs/integrators.md). A sample token,
valid for 2 h (paste it into "Test a token"):
  {sample}
Send example events through the worker (keys then show usage, Health fills), from the repository:
  make send-events
Ctrl-C stops the service and the worker (the stack stays up: `make stack-down`).
""",
        flush=True,
    )
    _wait(worker, service)


def _wait(worker: subprocess.Popen[bytes], service: subprocess.Popen[bytes]) -> None:
    """Until either child ends or Ctrl-C/SIGTERM; then both are stopped (K6: SIGTERM first)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while worker.poll() is None and service.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for child in (service, worker):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in (service, worker):
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
    # Either child's failure is the command's (a taken port once left `make admin` exiting 0).
    if service.returncode not in (0, None, -signal.SIGTERM):
        sys.exit(
            f"make admin: the configuration service stopped with exit status {service.returncode}"
            " (its port taken? ADMIN_PORT=... chooses another)"
        )
    if worker.returncode not in (0, None, -signal.SIGTERM):
        sys.exit(f"make admin: the worker stopped with exit status {worker.returncode}; see its log")


if __name__ == "__main__":
    main()
