"""The benchmark's raw events: the example community (worker/devtools/examples.py) under a name of the
run's own, HS256/RS256 tokens, repeats and invalid events.

Everything is generated once per workload and reused by every scenario that needs it, so the
worker and the references see byte-identical tokens.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

from worker.core.keys import sign_token
from worker.devtools import examples
from worker.devtools.examples import HMAC_SECRET, HS_KID, RS_KID

INVALID_KINDS = ("tampered", "expired", "unknown_kid", "not_json", "unsigned")


@dataclass(frozen=True)
class WorkloadSpec:
    events: int
    hs_share: float = 1.0
    repeat_share: float = 0.0
    invalid_share: float = 0.0
    seed: int = 6

    def label(self) -> str:
        return (
            f"{self.events} events, HS256 {self.hs_share:.0%}, repeated {self.repeat_share:.0%}, "
            f"invalid {self.invalid_share:.0%}"
        )


@dataclass
class Keys:
    private_rsa: Any
    public_rsa: Any
    public_pem: str

    @classmethod
    def generate(cls) -> Keys:
        """The example community's RS256 key pair."""
        private = examples.rsa_key()
        return cls(private, private.public_key(), examples.public_pem(private))


def community_yaml(community_id: str, keys: Keys) -> str:
    """The example community named `community_id` (its RS256 key: `keys`)."""
    return examples.config_yaml(examples.community(community_id, rsa_public_pem=keys.public_pem))


@dataclass
class Workload:
    spec: WorkloadSpec
    community_id: str
    values: list[bytes] = field(default_factory=list)
    # (token, alg) of every signed event whose signature is valid: what jwt.decode is timed on.
    good_tokens: list[tuple[str, str]] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)


def build(spec: WorkloadSpec, community_id: str, keys: Keys, now: int | None = None) -> Workload:
    """N raw event values. A repeated event reuses the token of an earlier visitor (page view)."""
    rng = random.Random(spec.seed)
    now = int(time.time()) if now is None else now
    received = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    work = Workload(spec, community_id)
    seen: list[tuple[str, str]] = []

    def envelope(i: int, **body: Any) -> bytes:
        value = {
            "event_id": f"b-{i}",
            "community_id": community_id,
            "received_at": received,
            "gateway": {"name": "bench"},
            **body,
        }
        return json.dumps(value, separators=(",", ":")).encode()

    def fresh_token(i: int) -> tuple[str, str]:
        alg = "HS256" if rng.random() < spec.hs_share else "RS256"
        claims = {
            "uuid": f"visitor-{spec.seed}-{i}",
            "firstname": "Ada",
            "lastname": "Lovelace",
            "email": f"ada{i}@example.com",
            "company": "Analytical Engines",
            "extra_values": {"customer_id": f"C{i % 1000000:06d}", "mobile": "+44 7700 900123", "tier": 3},
            "iat": now - 5,
            "exp": now + 4 * 3600,
        }
        if alg == "HS256":
            return sign_token(claims, HMAC_SECRET, "HS256", HS_KID), alg
        return sign_token(claims, keys.private_rsa, "RS256", RS_KID), alg

    def count(kind: str) -> None:
        work.kinds[kind] = work.kinds.get(kind, 0) + 1

    for i in range(spec.events):
        if rng.random() < spec.invalid_share:
            kind = INVALID_KINDS[i % len(INVALID_KINDS)]
            count("invalid_" + kind)
            if kind == "tampered":
                head, body, sig = fresh_token(i)[0].split(".")
                work.values.append(envelope(i, signed_identity=f"{head}.{body}.{sig[:-6]}AAAAAA"))
            elif kind == "expired":
                token = sign_token({"uuid": f"x-{i}", "exp": now - 600}, HMAC_SECRET, "HS256", HS_KID)
                work.values.append(envelope(i, signed_identity=token))
            elif kind == "unknown_kid":
                token = sign_token({"uuid": f"x-{i}", "exp": now + 7200}, HMAC_SECRET, "HS256", "bench_old")
                work.values.append(envelope(i, signed_identity=token))
            elif kind == "not_json":
                work.values.append(b"{this is not JSON " + str(i).encode())
            else:  # unsigned in require mode: signature_required
                work.values.append(envelope(i, identity={"uuid": f"u-{i}", "firstname": "Eve"}))
            continue
        if seen and rng.random() < spec.repeat_share:
            token, alg = seen[rng.randrange(len(seen))]
            count("repeated_" + alg)
        else:
            token, alg = fresh_token(i)
            seen.append((token, alg))
            count("unique_" + alg)
        work.good_tokens.append((token, alg))
        work.values.append(envelope(i, signed_identity=token))
    return work


def rs256_only(mix: Workload, community_id: str, limit: int) -> Workload:
    """Up to `limit` events, each with a distinct valid RS256 token taken from `mix`.

    Signing RS256 costs about 1 ms a token, so the RS256-only workload reuses the mix's
    tokens (already signed) in fresh envelopes instead of signing its own: the worker and the
    floor of the RS256 scenario run in their own processes, so no cache of the mix's run helps.
    """
    work = Workload(WorkloadSpec(0, 0.0, 0.0, 0.0, seed=mix.spec.seed), community_id)
    received = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    seen: set[str] = set()
    for token, alg in mix.good_tokens:
        if alg != "RS256" or token in seen:
            continue
        seen.add(token)
        i = len(work.values)
        body = {"event_id": f"r-{i}", "community_id": community_id, "received_at": received}
        body |= {"gateway": {"name": "bench"}, "signed_identity": token}
        work.values.append(json.dumps(body, separators=(",", ":")).encode())
        work.good_tokens.append((token, alg))
        if len(work.values) >= limit:
            break
    work.kinds = {"unique_RS256": len(work.values)}
    work.spec = WorkloadSpec(len(work.values), 0.0, 0.0, 0.0, seed=mix.spec.seed)
    return work
