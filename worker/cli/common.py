"""What every subcommand shares: one-line errors with exit 2, and the settings flags."""

from __future__ import annotations

from typing import NoReturn


class CliError(Exception):
    """A bad argument or input: printed as one line on stderr, exit code `code`, nothing changed."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def fail(message: str, code: int = 2) -> NoReturn:
    raise CliError(message, code)
