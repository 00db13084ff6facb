"""The program's name and its exit codes, for the commands and the worker alike (DESIGN §7, K10).

Meanings, not numbers, are what callers pick; the numbers are a contract with operators,
scripts and process supervisors (docs/fault-model.md):

- 0: done; `run` stopped cleanly (K6).
- 1: the environment failed (database unreachable, schema missing: fix the setup, retry);
  `run` stopped without committing its last batch (redone, not lost); `token verify`
  rejected the token.
- 2: wrong input, one line `identity-worker: error: …`, nothing changed; `run` met a bug.
- 3: fatal misconfiguration at start-up or run time: a topic missing, not authorized (K10).
- 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

from typing import Final

PROG: Final = "identity-worker"

EXIT_OK: Final = 0
EXIT_ENVIRONMENT: Final = 1  # what a store command exits with when the database fails it
EXIT_UNCLEAN: Final = 1  # `run` left without committing the batch in flight
EXIT_REJECTED: Final = 1  # `token verify`: the token is refused (or would be a dead letter)
EXIT_USAGE: Final = 2  # a bad argument or input: nothing changed
EXIT_BUG: Final = 2  # `run`: the worker failed with an error nobody classified
EXIT_FATAL: Final = 3  # K10: fatal misconfiguration, at start-up or run time (topic missing, not authorized)
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, as shells report it


def error_line(message: str) -> str:
    """The one line every refused command and fatal start-up prints on stderr."""
    return f"{PROG}: error: {message}"
