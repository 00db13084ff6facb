"""Validation problems as lines (DESIGN §7: never a secret in an output): one line per problem,
where and then what, never the value given. Every refusal of the worker's inputs is worded
here: a raw event (V1), a community's configuration, a request to the configuration service.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

#: Text that may be an HMAC secret (24 hex digits), never echoed: not in an error's location, nor
#: as a repeated YAML key (`store/yaml_io.py`).
SECRET_SHAPED = re.compile(r"[0-9a-f]{24}")
SECRET_SHAPED_KEY = "(a key shaped like a secret)"


def format_validation_error(error: ValidationError) -> list[str]:
    """One line per problem: where, then what. Never the offending value (it may be a secret)."""
    return format_error_items(error.errors(include_input=False, include_url=False))


def format_error_items(items: Iterable[Mapping[str, Any]]) -> list[str]:
    """`format_validation_error` for pydantic's error dicts (e.g. a web framework's); reads
    only `loc` and `msg`, never `input`."""
    lines = []
    for item in items:
        # A location names the input's own keys too (an unknown one is an error): a secret
        # pasted as a key must not be echoed either.
        parts = [SECRET_SHAPED_KEY if SECRET_SHAPED.search(str(p)) else p for p in item["loc"]]
        where = "".join(
            f"[{part}]" if isinstance(part, int) else (f".{part}" if i else str(part))
            for i, part in enumerate(parts)
        )
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return lines
