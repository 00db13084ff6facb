"""The one text rule for everything the configuration store keeps (DESIGN A3, A7, A11).

PostgreSQL cannot store a NUL or a lone surrogate (the driver's error must never be the
answer), and a control character in an id, a label, a name or a mapping path could forge a
line of an audit listing. So every text written through the CLI, a YAML file or the admin
API is held to this rule by the same function: the spec models (`core/config.py`) call it
for labels, regexes and mapping paths, and the admin service's entry check
(`admin/bodies.py`) for every member, form field, path and query string.
"""

from __future__ import annotations

from typing import Final

#: Tab and line breaks: allowed only in text that is several lines by nature (a PEM key).
_LINE_CHARACTERS: Final = frozenset("\t\r\n")


def unstorable(text: str, *, multi_line: bool = False) -> str | None:
    """What is wrong with `text` under the text rule, as a phrase ("holds a NUL character");
    None when nothing. Never quotes the text (it may be a pasted secret)."""
    if text.isprintable():  # the common case in one C loop: no control, no surrogate
        return None
    for ch in text:
        code = ord(ch)
        if code == 0:
            return "holds a NUL character"
        if 0xD800 <= code <= 0xDFFF:
            return "holds a lone surrogate (not a Unicode character)"
        if (code < 0x20 or 0x7F <= code <= 0x9F) and not (multi_line and ch in _LINE_CHARACTERS):
            return f"holds a control character (U+{code:04X})"
    return None


def check_storable(text: str) -> str:
    """A pydantic validator: `text` unchanged, or ValueError naming the problem (A7)."""
    problem = unstorable(text)
    if problem is not None:
        raise ValueError(f"{problem}; it cannot be stored")
    return text
