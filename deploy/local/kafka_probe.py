#!/usr/bin/env python3
"""Ask a Kafka broker for its cluster metadata; exit 0 only if it answers with brokers.

Used by deploy/local/stack to decide that a broker is really serving (DESIGN section 8):
a TCP connect is not enough, the broker must answer a Metadata request (API key 3,
version 4, the oldest version Kafka 4.x still serves after KIP-896) listing at least one
live broker. Standard library only, so it works before the virtualenv exists.

    kafka_probe.py HOST:PORT[,HOST:PORT...] [--timeout SECONDS]

Prints `cluster_id=<id> brokers=<n> controller=<id>` on success, the error on failure.
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys

METADATA_API_KEY = 3
METADATA_VERSION = 4


class ProbeError(Exception):
    pass


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ProbeError("connection closed by the broker")
        buf += chunk
    return bytes(buf)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ProbeError("truncated metadata response")
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return int(value)

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("utf-8", "replace")


def probe(host: str, port: int, timeout: float) -> tuple[str | None, int, int]:
    client_id = b"identity-worker-stack-probe"
    correlation_id = 0x1D
    body = struct.pack(">hhih", METADATA_API_KEY, METADATA_VERSION, correlation_id, len(client_id))
    body += client_id
    body += struct.pack(">i?", -1, False)  # all topics (null array), no auto-creation
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        reader = _Reader(_recv_exact(sock, size))
    if reader.take(">i") != correlation_id:
        raise ProbeError("unexpected correlation id")
    reader.take(">i")  # throttle_time_ms
    brokers = reader.take(">i")
    for _ in range(max(brokers, 0)):
        reader.take(">i")  # node_id
        reader.string()  # host
        reader.take(">i")  # port
        reader.string()  # rack
    cluster_id = reader.string()
    controller_id = reader.take(">i")
    return cluster_id, brokers, controller_id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bootstrap", help="HOST:PORT[,HOST:PORT...]")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    errors = []
    for server in args.bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        try:
            cluster_id, brokers, controller = probe(host, int(port), args.timeout)
        except (OSError, ValueError, ProbeError) as exc:
            errors.append(f"{server}: {exc}")
            continue
        if brokers < 1:
            errors.append(f"{server}: metadata lists no live broker yet")
            continue
        print(f"cluster_id={cluster_id} brokers={brokers} controller={controller}")
        return 0
    print("; ".join(errors), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
