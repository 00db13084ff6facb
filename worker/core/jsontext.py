"""Strict reading of JSON text (DESIGN §2.5, J1–J4): the one reader of every event value,
token header and token payload, in `run`, `process` and `token verify` alike.

- J1 RFC 8259 only: no NaN/Infinity, no byte-order mark; a repeated member name keeps the
  last value (Python's `json` does so, and so does the slow path below).
- J2 A string holding an escaped unpaired surrogate is not text: it is read as an
  `InvalidText` (member names too), which is not a `str`, so every rule that wants text
  refuses it by type (V1 → malformed_event, V5/V6 → their reasons, V12 → invalid_claims)
  and no output can ever carry it.
- J3 Nesting deeper than `MAX_DEPTH` makes the document unreadable, whatever the stack.
- J4 Numbers are kept with their text where the text matters: a float is a `JsonFloat`
  (a float that remembers its text, so a NumericDate is judged exactly); an integer too long
  for Python's `int` (4300 digits) is a `LongInteger`, never an unreadable document.

Cost: the common document (no backslash, no float, no container in a container in the object)
is read by orjson, with a `memchr`, a bracket count and a look at the object's members: 0.8 µs
for a 528-character event, against 1.1 µs for the C scanner of `json`, which reads every other
document (its hooks keep a float's text and a long integer, and the slow path reads escaped
surrogates); J3's scan of the text's brackets runs only when it holds more than `MAX_DEPTH`
of them. orjson reads what `json` reads, to the same values, except floats (no text kept) and
integers past 64 bits (read as floats): a document holding a float is read again by `json`, and
one it refuses (NaN, a BOM, past its own depth limit) goes to `json` for the verdict. The
property tests hold this reader to a strict reference (tests/core/test_properties.py).
Measured with `bench/cost_cuts.py` (docs/performance.md).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from itertools import accumulate
from typing import Any, Final

import orjson

#: J3: one explicit limit, the same in every command (Python's own depends on the stack).
MAX_DEPTH: Final = 32

NOT_JSON: Final = "not RFC 8259 JSON"
NOT_AN_OBJECT: Final = "not a JSON object"
TOO_DEEP: Final = f"nested deeper than {MAX_DEPTH} levels"

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP: Final = {"[": 1, "{": 1, "]": -1, "}": -1}
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class InvalidText:
    """A JSON string that is not valid Unicode: it holds an unpaired surrogate (J2).

    Deliberately not a `str`. Its repr is ASCII (the surrogate escaped), safe in a detail.
    """

    text: str

    def __repr__(self) -> str:
        return f"{self.text!a} (not valid Unicode: unpaired surrogate)"


@dataclass(frozen=True, slots=True)
class LongInteger:
    """A JSON integer longer than Python converts (4300 digits): kept as its text (J4)."""

    text: str

    def __repr__(self) -> str:
        return f"<integer of {len(self.text)} characters>"


class JsonFloat(float):
    """A JSON number with a fraction or an exponent, with the text it was read from (J4)."""

    __slots__ = ("text",)
    text: str


def _float(text: str) -> JsonFloat:
    number = JsonFloat(text)
    number.text = text
    return number


def _int(text: str) -> int | LongInteger:
    try:
        return int(text)
    except ValueError:  # only the digit limit: the scanner gave a well-formed integer
        return LongInteger(text)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _checked(value: Any) -> Any:
    if type(value) is str:
        return InvalidText(value) if _LONE_SURROGATE.search(value) else value
    if type(value) is list:
        return [_checked(item) for item in value]
    return value  # objects were checked by their own hook; numbers, bools, None


def _object(pairs: list[tuple[str, Any]]) -> dict[Any, Any]:
    # dict() of the pairs: the last of a repeated member name wins, as on the fast path (J1).
    return dict((_checked(name), _checked(value)) for name, value in pairs)


_fast_decoder = json.JSONDecoder(parse_float=_float, parse_constant=_no_constants)
_fast_decode = _fast_decoder.decode
# The C scanner `decode` itself calls through `raw_decode` (an instance attribute, not typed).
_scan_once: Callable[[str, int], tuple[Any, int]] = vars(_fast_decoder)["scan_once"]


def _fast(text: str) -> Any:
    """`_fast_decode(text)`: the same value or the same error, but a document that is an object
    from its first character to its last (every event, every token segment) goes to the C
    scanner straight, without `decode`'s two whitespace matches and two calls."""
    if text[:1] == "{":
        try:
            value, end = _scan_once(text, 0)
        except StopIteration:  # `raw_decode` words this error: let it
            return _fast_decode(text)
        if end == len(text):
            return value
    return _fast_decode(text)  # whitespace around it, extra data, not an object


_slow = json.JSONDecoder(
    parse_float=_float, parse_int=_int, parse_constant=_no_constants, object_pairs_hook=_object
).decode


def _plain(text: str) -> dict[Any, Any] | None:
    """The object `text` holds when orjson reads it as `_fast` would: no float, no container
    in a container (so J3 holds by itself); None for anything else (read it with `json`)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if type(value) is not dict:
        return None
    for child in value.values():
        kind = type(child)
        if kind is dict:
            child = child.values()
        elif kind is not list:
            if kind is float:
                return None
            continue
        for grandchild in child:
            kind = type(grandchild)
            if kind is float or kind is dict or kind is list:
                return None
    return value


def has_surrogate_escape(text: str) -> bool:
    """Whether `text` may hold an escaped surrogate (`\\ud800`–`\\udfff`), paired or not."""
    # A backslash is rare in events and tokens: one memchr decides most documents.
    return "\\" in text and _SURROGATE_ESCAPE.search(text) is not None


def read_object(text: str) -> dict[Any, Any] | str:
    """The JSON object `text` holds, or why it is unreadable (`NOT_JSON`, `NOT_AN_OBJECT`,
    `TOO_DEEP`). Strings are `str` (valid Unicode) or `InvalidText`; numbers `int`,
    `LongInteger` or `JsonFloat`; member names `str` or `InvalidText`."""
    escaped = has_surrogate_escape(text)
    # J3 is judged from the text: a member a repeated name replaced is not in the value, but it
    # nested all the same. Up to MAX_DEPTH brackets, no nesting can pass it.
    bracketed = text.count("{") + (text.count("[") if "[" in text else 0) > MAX_DEPTH  # `in`: a memchr
    if not escaped and not bracketed:
        plain = _plain(text)
        if plain is not None:
            return plain
    try:
        value = _slow(text) if escaped else _fast(text)
    except json.JSONDecodeError:
        return NOT_JSON
    except RecursionError:  # far deeper than MAX_DEPTH: the same verdict (J3)
        return TOO_DEEP
    except ValueError:  # an integer past the digit limit (or NaN/Infinity): read it exactly
        try:
            value = _slow(text)
        except ValueError:
            return NOT_JSON
        except RecursionError:
            return TOO_DEEP
    if type(value) is not dict:
        return NOT_AN_OBJECT
    if bracketed and _text_deeper_than(text, MAX_DEPTH):  # J3
        return TOO_DEEP
    return value


def _text_deeper_than(text: str, limit: int) -> bool:
    """Whether the brackets of `text` (a JSON document, its strings set aside) nest more than
    `limit` levels: every member counts, a replaced duplicate's too (J1, J3)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


def holds_invalid_text(value: Any) -> bool:
    """Whether `value` (as `read_object` returns them) holds an `InvalidText` anywhere."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is InvalidText:
            return True
        if type(item) is dict:
            stack.extend(item)
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return False


def integer_of(value: object) -> int | None:
    """The integer a JSON number denotes, judged from its text (J4): `1.0` and `1e3` are
    integers, `1764000000.00000001` is not (though a double rounds it to one). Not a bool,
    not a string, not a `LongInteger` (no usable date has thousands of digits)."""
    if type(value) is int:
        return value
    if type(value) is JsonFloat:
        try:
            exact = Decimal(value.text)
        except InvalidOperation:  # pragma: no cover - the scanner only passes JSON numbers
            return None
        if exact.is_zero():  # `0e400` denotes 0, however large its exponent
            return 0
        if not exact.is_finite() or exact.adjusted() > 20:  # far past any date: no huge ints
            return None
        return int(exact) if exact == exact.to_integral_value() else None
    return None


def number_text(value: object) -> str | None:
    """A JSON number or boolean as the text an output carries (DESIGN §2.1), or None.

    Integers as written; floats as `json.dumps` writes them (None when not finite)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)
    if type(value) is JsonFloat:
        return float.__repr__(value) if math.isfinite(value) else None
    if type(value) is LongInteger:
        return value.text
    return None
