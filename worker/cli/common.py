"""What every subcommand shares: one-line errors with exit 2, reading input files, writing private ones."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn, TextIO

from worker.exitcodes import EXIT_ENVIRONMENT, EXIT_USAGE

if TYPE_CHECKING:
    from worker.store.db import StoreError


class CliError(Exception):
    """A bad argument or input: printed as one line on stderr, exit code `code`, nothing changed."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    raise CliError(message, code)


def fail_store(exc: StoreError) -> NoReturn:
    """A store failure as one line: exit 2 for wrong input (nothing changed), 1 for the
    environment (database unreachable, schema missing; DESIGN §7, `worker.exitcodes`)."""
    from worker.store.db import InputError  # the offline commands never load the store

    fail(exc.message, EXIT_USAGE if isinstance(exc, InputError) else EXIT_ENVIRONMENT)


def read_text(path: str, what: str) -> str:
    """A file's text, or stdin for `-`; one line naming `what` when it cannot be read."""
    try:
        if path == "-":
            # Strict UTF-8, as for a file: the interpreter's stdin may turn bad bytes into
            # lone surrogates (surrogateescape), which no later step can encode.
            buffer = getattr(sys.stdin, "buffer", None)
            if buffer is None:
                return sys.stdin.read()
            stdin = io.TextIOWrapper(buffer, encoding="utf-8")
            try:
                return stdin.read()
            finally:
                stdin.detach()  # sys.stdin's buffer stays open
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        fail(f"cannot read {what} {path}: {exc.strerror}")
    except UnicodeDecodeError:
        fail(f"{what} {path} is not UTF-8 text")


@contextlib.contextmanager
def private_file(path: str) -> Iterator[TextIO]:
    """A file to write `path` with, readable by its owner only (mode 0600), put in place
    atomically when the block ends without an exception.

    A temporary file in the same directory (created 0600) is renamed over `path`, so whatever
    was there — a world-readable file included — is replaced whole, mode and all, and a failed
    write leaves it as it was. A path that is not a regular file (`/dev/null`, `/dev/stdout`, a
    named pipe) is written as it is: renaming over it would replace the device itself.
    Raises OSError.
    """
    if os.path.exists(path) and not os.path.isfile(path):
        with open(path, "w", encoding="utf-8") as stream:
            yield stream
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".identity-worker-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
