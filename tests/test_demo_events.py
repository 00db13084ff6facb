"""`make demo` shows every case of the README's demo; the example events must keep meaning what they say."""

from __future__ import annotations

import time

from worker.core.community import prepare
from worker.core.pipeline import process_event
from worker.devtools.demo import example_events
from worker.devtools.examples import config_yaml, rsa_key
from worker.store.yaml_io import parse_yaml


def test_each_demo_event_gets_the_outcome_its_name_promises() -> None:
    communities = prepare(parse_yaml(config_yaml()))
    now = int(time.time())
    got = {
        name: (out.outcome.value, out.reason.value if out.reason else None)
        for name, value in example_events(rsa_key(), now)
        for out in [process_event(value, lookup=communities, now=now + 1)]
    }
    assert got == {
        "valid-hs256": ("enriched", None),
        "valid-rs256": ("enriched", None),
        "expired": ("rejected", "token_expired"),
        "expires-soon": ("rejected", "expiry_too_soon"),
        "tampered": ("rejected", "invalid_signature"),
        "unknown-kid": ("rejected", "unknown_kid"),
        "unsigned": ("rejected", "signature_required"),
        "unsigned-openshop": ("enriched", None),
        "not-json": ("rejected", "malformed_event"),
    }
