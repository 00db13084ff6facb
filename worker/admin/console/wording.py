"""The console's plain words for a refusal (DESIGN §10, A3, A5), in one place.

The API answers a refusal with one precise line for programs and operators
(`hmac_secret: hmac_secret must be exactly 24 characters of 0-9a-f (got 24 characters)`); a
customer's administrator reads a form. `explain` turns the same refusal (a spec model's
`ValidationError`, the spec's `ConfigError` lines, the store's messages) into one sentence per
form field, saying what is wrong with *this* value and what to do, never in regex notation and
never quoting a secret. Durations ("1 h 30 min") are `worker.admin.console.durations`'.

explain(exc, values, rows=()) -> Refusal   `fields`: form field -> sentence; `general`: the rest
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from worker.admin.console.durations import DURATION_FIELDS, show_duration
from worker.admin.errors import from_exception
from worker.core.config import ConfigError
from worker.core.contracts import GROUP_LIST_FIELDS, GROUP_SCALAR_FIELDS
from worker.core.keys import KID_MAX_CHARS, RSA_MIN_BITS

# ---------------------------------------------------------------- refusals


@dataclass
class Refusal:
    """A refusal as a form shows it: beside each field its sentence, the rest above the button."""

    status: int
    fields: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def add(self, name: str | None, sentence: str) -> None:
        if name is None:
            self.general.append(sentence)
        else:  # two problems of one field: both, in order
            self.fields[name] = f"{self.fields[name]} {sentence}" if name in self.fields else sentence


def explain(exc: BaseException, values: dict[str, str], rows: Sequence[tuple[str, str]] = ()) -> Refusal:
    """The refusal `exc` of a console form whose fields held `values` (never shown back for
    secrets; read here to say what is wrong with them); a store refusal as the API's table
    (`errors.from_exception`) gives it, anything else re-raised. `rows`: the community's mappings
    (from, to) in table order, to name a mapping by the row number the table shows."""
    if isinstance(exc, ValidationError):
        refusal = Refusal(422)
        for item in exc.errors(include_input=False, include_url=False):
            # The innermost field (`jwt_keys[0].kid` is the form's `kid`); a model's own check
            # (`jwt_keys[0]`, or the whole body) is about no one field.
            loc = item["loc"]
            name = loc[-1] if loc and isinstance(loc[-1], str) else None
            refusal.add(*_item(name, item, values))
        return refusal
    if isinstance(exc, ConfigError):
        refusal = Refusal(422)
        for line in exc.problems:
            refusal.add(*_line(line, rows))
        return refusal
    failure = from_exception(exc)  # the API's table: a store refusal, or re-raised
    refusal = Refusal(failure.status)
    refusal.add(*_line(failure.message.removeprefix("refused, the result would be invalid: "), rows))
    return refusal


def _item(name: str | None, item: ErrorDetails, values: dict[str, str]) -> tuple[str | None, str]:
    """One pydantic error item of field `name` as a sentence."""
    kind, ctx = item["type"], item.get("ctx") or {}
    value = values.get(name or "", "")
    if kind == "value_error":
        message = item["msg"].removeprefix("Value error, ")
        if name is None:
            return _line(message, ())
        if name in _VALUE_SENTENCES:
            return name, _VALUE_SENTENCES[name](value, message)
        return name, _sentence(message)
    if kind in ("less_than_equal", "less_than"):
        return name, f"At most {_amount(name, ctx.get('le', ctx.get('lt')))}."
    if kind in ("greater_than_equal", "greater_than"):
        least = ctx.get("ge", ctx.get("gt"))
        return name, "Cannot be negative." if least == 0 else f"At least {_amount(name, least)}."
    if kind == "string_pattern_mismatch" and name in _PATTERN_SENTENCES:
        return name, _PATTERN_SENTENCES[name](value)
    if kind == "string_too_short":
        return name, "Required."
    if kind == "string_too_long":
        return name, f"At most {ctx.get('max_length')} characters; this one has {len(value)}."
    if kind == "enum":
        return name, f"Choose {ctx.get('expected', 'one of the choices')}."
    if kind == "missing":
        return name, "Required."
    if kind in ("int_type", "int_parsing"):
        return name, "Write a whole number, or a duration such as 90 s, 15 min, 1 h or 2 d."
    return name, _sentence(item["msg"])


def _amount(name: str | None, number: object) -> str:
    if name in DURATION_FIELDS and isinstance(number, int):
        return show_duration(number)
    return str(number)


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else text


#: The characters of a kid and of a custom field's key (`[a-z0-9_]`).
_LOWER_WORD: Final = "abcdefghijklmnopqrstuvwxyz0123456789_"


def _what_is_in(value: str, allowed: str) -> str:
    """`upper-case letters and spaces`: the kinds of character in `value` outside `allowed`."""
    outside = [c for c in value if c not in allowed]
    kinds = {
        "upper-case letters": [c for c in outside if c.isupper()],
        "letters after f": [c for c in outside if "g" <= c <= "z"],
        "spaces or line breaks": [c for c in outside if c.isspace()],
        "hyphens": [c for c in outside if c == "-"],
        "dots": [c for c in outside if c == "."],
        "+, / or = (as in base64)": [c for c in outside if c in "+/="],
    }
    found = [kind for kind, chars in kinds.items() if chars]
    if len(outside) > sum(len(chars) for chars in kinds.values()):
        found.append("other symbols")
    return " and ".join(found) if len(found) < 3 else ", ".join(found[:-1]) + " and " + found[-1]


def _kid(value: str, message: str) -> str:
    if not value:
        return "Give the key an ID: the kid your website puts in its tokens' header."
    if len(value) > KID_MAX_CHARS:
        return f"At most {KID_MAX_CHARS} characters; this one has {len(value)}."
    what = _what_is_in(value, _LOWER_WORD)
    return f"Use only lower-case letters, digits and underscores (this one has {what})."


def _secret(value: str, message: str) -> str:
    if any(c in "+/=" for c in value) or any("g" <= c <= "z" or "G" <= c <= "Z" for c in value):
        return (
            "This looks like a base64 or other text secret, not the 24 hexadecimal characters "
            "(0-9 and a-f) the platform uses: let the console generate one, or paste the hex secret."
        )
    if any(c.isupper() for c in value):
        return "Use lower-case a-f: the secret is case-sensitive, exactly the text your website signs with."
    if any(not c.isalnum() for c in value):
        return f"Only 0-9 and a-f are allowed (this one has {_what_is_in(value, '0123456789abcdef')})."
    return f"Must be exactly 24 characters 0-9 and a-f; this one has {len(value)}."


_RSA_SENTENCES: Final = (
    ("private key", "This is a private key: paste the public key only. It was not stored."),
    ("PEM blocks", "Paste one public key per key ID; this holds more than one."),
    ("must be PEM starting", "Paste the whole PEM text, from -----BEGIN PUBLIC KEY----- to its END line."),
    ("must end with", "Paste the whole PEM text, ending with its -----END PUBLIC KEY----- line."),
    ("not a readable", "This PEM text cannot be read as a public key: paste it again, whole and unchanged."),
    ("not an RSA key", "This is not an RSA key: the platform verifies RS256 tokens with RSA keys."),
    ("the key alone", "Paste the key alone, its BEGIN line matching its form, with no header lines."),
    ("bits", f"This key is too short: RSA keys need at least {RSA_MIN_BITS} bits."),
)


def _rsa(value: str, message: str) -> str:
    return next((said for seen, said in _RSA_SENTENCES if seen in message), _sentence(message))


def _regex(value: str, message: str) -> str:
    why = message.removeprefix("regex is not valid RE2 syntax: ")
    if why != message:
        return f"This pattern is not a valid regular expression ({why})."
    return _sentence(message)


def _target(value: str, message: str) -> str:
    fields = ", ".join(GROUP_SCALAR_FIELDS + GROUP_LIST_FIELDS)
    return (
        f"Choose identity_group. followed by one of {fields}, "
        "or custom_fields. followed by a custom field's key."
    )


_VALUE_SENTENCES: Final[dict[str, Callable[[str, str], str]]] = {
    "kid": _kid,
    "hmac_secret": _secret,
    "rsa_public_key": _rsa,
    "regex": _regex,
    "from": lambda value, message: (
        "Write uuid, or extra_values. followed by the name of the value (1 to 64 characters)."
    ),
    "to": _target,
}
_PATTERN_SENTENCES: Final[dict[str, Callable[[str], str]]] = {
    "key": lambda value: (
        "Use 1 to 64 lower-case letters, digits and underscores"
        + (f" (this one has {_what_is_in(value, _LOWER_WORD)})." if value else ".")
    ),
    "id": lambda value: "Use 1 to 64 letters, digits, underscores and hyphens.",
}


def _row(rows: Sequence[tuple[str, str]], source: str, target: str) -> str:
    where = [i for i, row in enumerate(rows, 1) if row == (source, target)]
    return f"mapping {where[0]} ({source} → {target})" if where else f"the mapping {source} → {target}"


#: The spec's and the store's lines (worker/core/config.py, worker/store/repository.py), by
#: pattern: the field they are about and the sentence; `m` is the match, `rows` the mappings.
_LINES: Final[tuple[tuple[re.Pattern[str], str | None, Callable[..., str]], ...]] = tuple(
    (re.compile(pattern), name, say)
    for pattern, name, say in (
        (
            r"max_validity_seconds \((\d+)\) must be at least min_validity_seconds \((\d+)\)",
            "max_validity_seconds",
            lambda m, rows: (
                f"Must be at least the minimum validity ({show_duration(int(m[2]))}), "
                "or every token would be refused."
            ),
        ),
        (
            r"mappings\[(\d+)\]\.to names custom field '(.*)', which is not declared",
            "to",
            lambda m, rows: (
                f"There is no custom field {m[2]} (mapping {int(m[1]) + 1}): "
                "declare it under Custom fields first."
            ),
        ),
        (
            r"already has a key with kid '(.*)'",
            "kid",
            lambda m, rows: (
                f"This community already has a key {m[1]}. To rotate, add the new key under a new ID, "
                "then remove the old one."
            ),
        ),
        (
            r"already has a custom field '(.*)'",
            "key",
            lambda m, rows: f"There is already a custom field {m[1]}.",
        ),
        (
            r"custom field '(.*)' is the target of mapping (.*) -> (.*); remove",
            None,
            lambda m, rows: (
                f"{_sentence(_row(rows, m[2], m[3]))[:-1]} writes this field: remove that mapping first."
            ),
        ),
        (
            r"already has mapping (.*) -> (.*) \(a second",
            None,
            lambda m, rows: f"This mapping is already there ({_row(rows, m[1], m[2])}).",
        ),
        (r"community '(.*)' already exists", "id", lambda m, rows: f"There is already a community {m[1]}."),
        (
            r"is the last key of community",
            None,
            lambda m, rows: (
                "This is the community's last key and it requires signed identities: add the new key "
                "first, or set Signed identities to reject under Handling."
            ),
        ),
        (
            r"cannot require signed identities",
            "signed_identities",
            lambda m, rows: "The community has no key yet: add one under JWT keys, then switch to require.",
        ),
        (
            r"would require signed identities with no JWT key|requires signed identities but has no JWT",
            None,
            lambda m, rows: (
                "A community that requires signed identities starts with its first key: generate or "
                "paste one, or create it in reject mode."
            ),
        ),
        (
            r"give exactly one of",
            None,
            lambda m, rows: "Give one key: generate an HMAC secret, paste one, or paste an RSA public key.",
        ),
        (
            r"^received_at: ",
            "received_at",
            lambda m, rows: "Write a date and time like 2026-11-24T10:00:00Z.",
        ),
    )
)


def _line(line: str, rows: Sequence[tuple[str, str]]) -> tuple[str | None, str]:
    for pattern, name, say in _LINES:
        found = pattern.search(line)
        if found:
            return name, say(found, rows)
    return None, _sentence(line.removeprefix("refused: "))


#: A custom field key's rule in words, for the form (`spec.FIELD_KEY_PATTERN` as a sentence).
FIELD_KEY_RULE: Final = "1 to 64 lower-case letters, digits and underscores"
