"""The strict reader's shortcuts answer exactly what the full reading answers (J1–J4).

`jsontext._plain` reads a document with orjson and keeps the value only when it holds no float
and no container inside a container; `jsontext._fast` hands a document that is an object from
its first character to its last straight to the C scanner; `read_object` skips J3's bracket
count when the object holds no container inside a container. Each shortcut is compared with the
path it stands in for, on valid documents and on the same documents cut, padded, extended or
nested past MAX_DEPTH.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.core import jsontext
from worker.core.jsontext import MAX_DEPTH, TOO_DEEP, JsonFloat, read_object

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12,
)
_edits = st.sampled_from(["", " ", "\n", "x", "}", "{", ",", '"', "NaN", "[1]"])


def _outcome(read: Any, text: str) -> str:
    try:
        return repr(read(text))
    except Exception as exc:  # the error's type and words are part of the contract
        return f"{type(exc).__name__}: {exc}"


@settings(max_examples=300, deadline=None)
@given(value=st.dictionaries(st.text(max_size=4), _values, max_size=4), cut=st.integers(0, 40), edit=_edits)
def test_the_scanner_shortcut_reads_and_refuses_like_decode(
    value: dict[str, Any], cut: int, edit: str
) -> None:
    text = json.dumps(value)
    for variant in (text, text + edit, edit + text, text[: max(0, len(text) - cut)] + edit):
        assert _outcome(jsontext._fast, variant) == _outcome(jsontext._fast_decode, variant)


@settings(max_examples=100, deadline=None)
@given(depth=st.integers(1, 2 * MAX_DEPTH), wrap=st.sampled_from(["[", '{"a":']), flat=st.integers(0, 40))
def test_the_depth_shortcut_keeps_j3(depth: int, wrap: str, flat: int) -> None:
    close = "]" if wrap == "[" else "}"
    siblings = "".join(f',"k{i}":[{i}]' for i in range(flat))  # many brackets, shallow
    text = '{"deep":' + wrap * depth + "1" + close * depth + siblings + "}"
    deeper = depth + 1 > MAX_DEPTH  # the outer object is one level more
    assert (read_object(text) == TOO_DEEP) is deeper


@settings(max_examples=400, deadline=None)
@given(
    value=st.dictionaries(st.text(max_size=4), _values | st.integers(-(2**70), 2**70), max_size=4),
    cut=st.integers(0, 40),
    edit=_edits,
)
def test_the_orjson_shortcut_answers_only_what_the_scanner_reads_the_same(
    value: dict[str, Any], cut: int, edit: str
) -> None:
    text = json.dumps(value)
    for variant in (text, text + edit, edit + text, text[: max(0, len(text) - cut)] + edit):
        plain = jsontext._plain(variant)
        if plain is None:
            continue
        scanned = jsontext._fast_decode(variant)
        assert repr(plain) == repr(scanned)
        assert [type(v) for v in plain.values()] == [type(v) for v in scanned.values()]


def test_numbers_orjson_would_change_are_read_by_their_text() -> None:
    """J4: orjson reads a float without its text and an integer past 64 bits as a float; such
    documents (a float at any depth, beside or inside a container) are read by `json`."""
    for text, path in (
        ('{"exp":1764000000.00000001}', ("exp",)),
        ('{"g":{"n":1.0}}', ("g", "n")),
        ('{"g":[1e3]}', ("g", 0)),
    ):
        value: Any = read_object(text)
        for step in path:
            value = value[step]
        assert type(value) is JsonFloat
    for big in (2**64, -(2**63) - 1, 10**30):
        read = read_object(f'{{"n":{big},"g":{{"m":{big}}}}}')
        assert read == {"n": big, "g": {"m": big}} and type(read["n"]) is int
