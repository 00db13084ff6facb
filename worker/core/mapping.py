"""Mapping rules M1–M6 of DESIGN §4: identity → identity group and custom fields. Pure.

A mapping that cannot apply is skipped and listed, never an error (M3, M4, M6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.core.community import Community
from worker.core.contracts import GROUP_LIST_FIELDS
from worker.core.reasons import SkipReason


@dataclass(slots=True)
class Mapped:
    identity_group: dict[str, Any]
    custom_fields: dict[str, str] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)


def start_group(identity: dict[str, Any]) -> dict[str, Any]:
    """M1: firstname, lastname, company copied; email becomes emails; lists default to []."""
    email = identity.get("email")
    return {
        "firstname": identity.get("firstname"),
        "lastname": identity.get("lastname"),
        "gender": None,
        "company": identity.get("company"),
        "notes": None,
        "emails": [email] if email is not None else [],
        "home_phones": [],
        "mobile_phones": [],
    }


def apply_mappings(identity: dict[str, Any], community: Community) -> Mapped:
    """M2–M6, in the configured order."""
    result = Mapped(start_group(identity))
    extra: dict[str, str] = identity.get("extra_values") or {}
    for mapping in community.mappings:
        value = identity.get("uuid") if mapping.extra_key is None else extra.get(mapping.extra_key)
        if value is None:
            result.skipped.append(_skip(mapping.source, mapping.target, SkipReason.SOURCE_MISSING))
            continue
        if mapping.target_kind == "custom_fields":
            custom = community.custom_fields[mapping.target_name]
            if not custom.accepts(value):
                result.skipped.append(_skip(mapping.source, mapping.target, SkipReason.REGEX_MISMATCH))
                continue
            result.custom_fields[mapping.target_name] = value
        elif mapping.target_name in GROUP_LIST_FIELDS:
            values: list[str] = result.identity_group[mapping.target_name]
            if value not in values:
                values.append(value)
        else:
            result.identity_group[mapping.target_name] = value
    return result


def _skip(source: str, target: str, reason: SkipReason) -> dict[str, str]:
    return {"from": source, "to": target, "reason": reason.value}
