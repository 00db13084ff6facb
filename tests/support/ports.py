"""Free TCP ports for a test's own servers, or an address nothing listens on."""

from __future__ import annotations

import contextlib
import socket


def free_port(count: int = 1) -> int:
    """A TCP port `p` such that `p` .. `p + count - 1` are all free on 127.0.0.1 right now
    (another process may take them later). `count` > 1: `run --processes N` listens on the
    metrics port + the member's index (K7), so its N ports must all be free."""
    while True:
        with contextlib.ExitStack() as held:
            first = held.enter_context(socket.socket())
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            try:
                for offset in range(1, count):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", port + offset))
            except (OSError, OverflowError):
                continue  # one of the next ports is taken (or past 65535): try another first port
            return port
