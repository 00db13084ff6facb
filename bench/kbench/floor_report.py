"""Issue 24's figures of `make bench`: the worker against the floor reference, in one run.

- `rsa_verify_cpu` / `hmac_cpu`: the bare primitives' CPU cost per token, in this process.
- `output_problems`: what makes a run's figures worthless (missing, duplicated or wrongly
  decided outputs); the bench exits non-zero on any.
- `floor_rows` / `delay_rows`: the targets, with PASS/MISS, as rows; `markdown` prints them as
  the tables docs/performance.md takes as they are.

Every input is a plain dict (the bench's `asdict` of its results), so this module has no
Kafka in it and its rules are unit-tested (tests/bench/test_floor_report.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

# Worker CPU per event ÷ floor CPU per event, at most (issue 24).
FLOOR_RATIO_TARGET = 2.0
# RS256: worker CPU/ev ≤ (RSA verify + the worker's unique-HS256 CPU/ev) × this.
RS256_MARGIN = 1.10
# p99 delay targets (ms) by fraction of the measured maximum rate.
DELAY_TARGETS_MS = {0.25: 50.0, 0.5: 100.0}
DELAY_LEVELS = (0.1, 0.25, 0.5)
# Fewer outputs than this in a run's measured window (a few batches: --quick) give no verdict.
MIN_COUNTED = 5000

# (worker scenario, floor run, label, ratio target or None = reported only)
WORKLOADS = (
    ("unique", "floor-unique", "unique HS256", FLOOR_RATIO_TARGET),
    ("repeat90", "floor-repeat", "90 % repeated HS256", FLOOR_RATIO_TARGET),
    ("mix", "floor-mix", "mix (80 % HS256 / 20 % RS256, 5 % invalid)", None),
    ("rs256", "floor-rs256", "RS256 only (unique)", None),
)


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def _per_item(step: Callable[[], None], items: int, min_seconds: float) -> float:
    """CPU seconds per item: `step` (which handles `items` items) repeated for ≥ min_seconds."""
    rounds, start = 0, _cpu()
    while True:
        step()
        rounds += 1
        used = _cpu() - start
        if used >= min_seconds:
            return used / (rounds * items)


def _parts(tokens: Sequence[str]) -> list[tuple[bytes, bytes]]:
    """(signing input, signature) of each compact JWS."""
    out = []
    for token in tokens:
        head, body, sig = token.split(".")
        out.append((f"{head}.{body}".encode(), base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))))
    return out


def rsa_verify_cpu(tokens: Sequence[str], public_key: Any, min_seconds: float = 1.0) -> float:
    """CPU seconds per RSA-2048 PKCS#1 v1.5 SHA-256 verify (`cryptography`), the bare call."""
    parts = _parts(tokens)
    pad, sha = padding.PKCS1v15(), hashes.SHA256()

    def step() -> None:
        for signed, sig in parts:
            public_key.verify(sig, signed, pad, sha)

    return _per_item(step, len(parts), min_seconds)


def hmac_cpu(tokens: Sequence[str], secret: bytes, min_seconds: float = 0.5) -> float:
    """CPU seconds per HMAC-SHA256 check (compute and `compare_digest`), the bare call."""
    parts = _parts(tokens)

    def step() -> None:
        for signed, sig in parts:
            if not hmac.compare_digest(hmac.new(secret, signed, hashlib.sha256).digest(), sig):
                raise ValueError("a token of the workload does not verify")

    return _per_item(step, len(parts), min_seconds)


def output_problems(result: Mapping[str, Any], expected: int, enriched: int | None) -> list[str]:
    """What is wrong with one backlog run's outputs: every input answered exactly once, and
    exactly the `enriched` valid events enriched (K1, K2: read_committed, no duplicates);
    `enriched` None: not checked (the pass-through copies)."""
    name, problems = result["name"], []
    if result["received"] != expected:
        problems.append(f"{name}: {result['received']} of {expected} inputs answered")
    if result["duplicates"]:
        problems.append(f"{name}: {result['duplicates']} duplicate outputs under exactly-once")
    got = result["by_topic"].get("enriched", 0)
    if enriched is not None and got != enriched:
        problems.append(f"{name}: {got} enriched outputs, {enriched} expected")
    return problems


def _verdict(met: bool | None) -> str:
    return "—" if met is None else ("PASS" if met else "MISS")


def floor_rows(by: Mapping[str, Mapping[str, Any]], rsa_cpu: float | None) -> list[dict[str, Any]]:
    """One row per workload that has both a worker run and a floor run (CPU µs per event)."""
    rows = []
    for scenario, floor, label, goal in WORKLOADS:
        if scenario not in by or floor not in by:
            continue
        worker_us = by[scenario]["cpu_per_event"] * 1e6
        floor_us = by[floor]["cpu_per_event"] * 1e6
        ratio = worker_us / floor_us if floor_us > 0 else float("nan")
        target, met = "reported", None
        too_few = min(by[scenario].get("counted", 0), by[floor].get("counted", 0)) < MIN_COUNTED
        if too_few:
            target = f"no verdict: under {MIN_COUNTED} outputs in a window"
        elif goal is not None:
            target, met = f"≤ {goal:.1f}× floor", ratio <= goal
        elif scenario == "rs256" and rsa_cpu is not None and "unique" in by:
            hs_us = by["unique"]["cpu_per_event"] * 1e6
            bound = (rsa_cpu * 1e6 + hs_us) * RS256_MARGIN
            target = f"≤ ({rsa_cpu * 1e6:.1f} RSA + {hs_us:.1f} HS256) × {RS256_MARGIN:.2f} = {bound:.1f} µs"
            met = worker_us <= bound
        rows.append(
            {
                "workload": label,
                "worker_us": worker_us,
                "floor_us": floor_us,
                "ratio": ratio,
                "target": target,
                "met": met,
                "load": (by[scenario].get("loadavg", float("nan")), by[floor].get("loadavg", float("nan"))),
            }
        )
    return rows


def delay_rows(paced: Sequence[Mapping[str, Any]], max_rate: float) -> list[dict[str, Any]]:
    """The paced levels nearest 10 %, 25 % and 50 % of `max_rate`, with their p99 targets."""
    rows = []
    for fraction in DELAY_LEVELS:
        if not paced:
            break
        level = min(paced, key=lambda p: abs(p["offered"] - fraction * max_rate))
        goal = DELAY_TARGETS_MS.get(fraction)
        rows.append(
            {
                "fraction": fraction,
                "offered": level["offered"],
                "answered": f"{level['received']}/{level['sent']}",
                "p50_ms": level["p50_ms"],
                "p99_ms": level["p99_ms"],
                "target": "reported" if goal is None else f"p99 ≤ {goal:g} ms",
                "met": None
                if goal is None
                else level["p99_ms"] <= goal and level["received"] == level["sent"],
                "load": level.get("loadavg", float("nan")),
            }
        )
    return rows


def markdown(rows: Sequence[Mapping[str, Any]], delays: Sequence[Mapping[str, Any]]) -> str:
    """Both tables, as docs/performance.md takes them."""
    lines = [
        "| workload | worker CPU µs/ev | floor CPU µs/ev | worker ÷ floor | target | result "
        "| load (worker / floor) |",
        "|---|---:|---:|---:|---|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['workload']} | {r['worker_us']:.1f} | {r['floor_us']:.1f} | {r['ratio']:.2f}× | "
            f"{r['target']} | {_verdict(r['met'])} | {r['load'][0]:.2f} / {r['load'][1]:.2f} |"
        )
    if delays:
        lines += [
            "",
            "| paced load (mix) | offered ev/s | answered | p50 ms | p99 ms | target | result | load |",
            "|---|---:|---:|---:|---:|---|---|---:|",
        ]
        for d in delays:
            lines.append(
                f"| {d['fraction']:.0%} of max | {d['offered']:,.0f} | {d['answered']} | {d['p50_ms']:.0f} | "
                f"{d['p99_ms']:.0f} | {d['target']} | {_verdict(d['met'])} | {d['load']:.2f} |"
            )
    return "\n".join(lines)
