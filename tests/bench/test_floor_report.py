"""The bench's floor reference and issue 24's report rules (bench/kbench/floor.py,
bench/kbench/floor_report.py): pure, no Kafka.

The floor must decide every event of the bench's workloads right (its outputs are counted
against the workload's valid tokens, like the worker's), and the report must call PASS/MISS
and wrong outputs exactly as docs/performance.md says."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

# Appended, not prepended: bench/ holds scripts (pipeline.py, scale.py) no import may find first.
sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))

from kbench import floor_report, workload
from kbench.floor import Verifier

from worker.devtools.examples import HMAC_SECRET, HS_KID, RS_KID


@pytest.fixture(scope="module")
def keys() -> workload.Keys:
    return workload.Keys.generate()


def verifier(keys: workload.Keys, cache_size: int = 100) -> Verifier:
    return Verifier({HS_KID: HMAC_SECRET.encode()}, {RS_KID: keys.public_rsa}, cache_size)


def test_the_floor_enriches_exactly_the_valid_events_of_a_mixed_workload(keys: workload.Keys) -> None:
    spec = workload.WorkloadSpec(400, hs_share=0.7, repeat_share=0.3, invalid_share=0.25, seed=3)
    work = workload.build(spec, "acme", keys)
    assert {k for k in work.kinds if k.startswith("invalid_")} == {
        f"invalid_{k}" for k in workload.INVALID_KINDS
    }
    floor, now = verifier(keys), time.time()
    decided = [floor(value, now) for value in work.values]
    assert sum(ok for ok, _ in decided) == len(work.good_tokens)
    assert all(b'"uuid"' in out for ok, out in decided if ok)
    assert all(b'"reason"' in out for ok, out in decided if not ok)


def test_the_floor_checks_the_rs256_signature(keys: workload.Keys) -> None:
    mix = workload.build(workload.WorkloadSpec(40, hs_share=0.0, seed=4), "acme", keys)
    rs = workload.rs256_only(mix, "acme", 10)
    assert len(rs.values) == 10 and all(alg == "RS256" for _, alg in rs.good_tokens)
    floor, now = verifier(keys), time.time()
    assert all(floor(value, now)[0] for value in rs.values)
    token = rs.good_tokens[0][0]
    tampered = rs.values[0].replace(token.encode(), token[:-6].encode() + b"AAAAAA")
    assert floor(tampered, now) == (False, b'{"event_id": "r-0", "reason": "invalid_signature"}')


def test_a_cached_token_is_not_verified_again_but_its_exp_is(keys: workload.Keys) -> None:
    work = workload.build(workload.WorkloadSpec(3, seed=5), "acme", keys)
    floor, now = verifier(keys, cache_size=2), time.time()
    assert [floor(v, now)[0] for v in work.values] == [True] * 3
    assert len(floor.cache) == 2  # FIFO: the first token was evicted
    floor.hs_keys.clear()  # a verification would now fail: hits must not verify
    assert floor(work.values[2], now)[0] is True
    assert floor(work.values[0], now)[0] is False  # evicted, verified again, no key any more
    assert floor(work.values[2], now + 5 * 3600) == (False, b'{"event_id": "b-2", "reason": "expired"}')


def backlog(name: str, cpu_us: float, received: int = 10, duplicates: int = 0, enriched: int = 10) -> dict:
    return {
        "name": name,
        "cpu_per_event": cpu_us / 1e6,
        "received": received,
        "duplicates": duplicates,
        "by_topic": {"enriched": enriched, "rejected": received - enriched},
        "loadavg": 0.5,
        "counted": 10_000,
    }


def test_output_problems_name_missing_duplicated_and_wrongly_decided_outputs() -> None:
    assert floor_report.output_problems(backlog("unique", 50), 10, 10) == []
    assert floor_report.output_problems(backlog("unique", 50, received=9, enriched=9), 10, 10) == [
        "unique: 9 of 10 inputs answered",
        "unique: 9 enriched outputs, 10 expected",
    ]
    assert floor_report.output_problems(backlog("mix", 50, duplicates=1, enriched=8), 10, 9) == [
        "mix: 1 duplicate outputs under exactly-once",
        "mix: 8 enriched outputs, 9 expected",
    ]
    assert floor_report.output_problems(backlog("copy", 5, enriched=0), 10, None) == []


def test_floor_rows_pass_at_twice_the_floor_and_miss_above() -> None:
    by = {
        "unique": backlog("unique", 40.0),
        "floor-unique": backlog("floor-unique", 20.0),
        "repeat90": backlog("repeat90", 20.2),
        "floor-repeat": backlog("floor-repeat", 10.0),
        "mix": backlog("mix", 50.0),  # no floor run: no row
    }
    rows = floor_report.floor_rows(by, rsa_cpu=None)
    assert [(r["workload"], round(r["ratio"], 2), r["met"]) for r in rows] == [
        ("unique HS256", 2.0, True),
        ("90 % repeated HS256", 2.02, False),
    ]
    table = floor_report.markdown(rows, [])
    assert "| unique HS256 | 40.0 | 20.0 | 2.00× | ≤ 2.0× floor | PASS | 0.50 / 0.50 |" in table
    assert "| MISS |" in table


def test_the_rs256_bound_is_rsa_verify_plus_the_hs256_figure_plus_ten_percent() -> None:
    by = {
        "unique": backlog("unique", 40.0),
        "rs256": backlog("rs256", 63.8),
        "floor-rs256": backlog("f", 25.0),
    }
    (row,) = floor_report.floor_rows(by, rsa_cpu=18e-6)
    assert row["target"] == "≤ (18.0 RSA + 40.0 HS256) × 1.10 = 63.8 µs" and row["met"] is True
    by["rs256"] = backlog("rs256", 63.9)
    assert floor_report.floor_rows(by, rsa_cpu=18e-6)[0]["met"] is False


def test_a_window_of_too_few_outputs_gives_no_verdict() -> None:
    by = {"unique": backlog("unique", 40.0), "floor-unique": backlog("floor-unique", 30.0)}
    by["floor-unique"]["counted"] = floor_report.MIN_COUNTED - 1
    (row,) = floor_report.floor_rows(by, rsa_cpu=None)
    assert row["met"] is None and row["target"].startswith("no verdict")


def test_delay_rows_take_the_nearest_levels_and_miss_on_unanswered_events() -> None:
    def level(offered: float, p99: float, received: int = 100) -> dict:
        return {"offered": offered, "p50_ms": p99 / 2, "p99_ms": p99, "received": received, "sent": 100}

    paced = [level(1000, 20), level(2500, 50), level(5000, 30, received=99), level(7500, 400)]
    rows = floor_report.delay_rows(paced, max_rate=10_000)
    assert [(r["fraction"], r["offered"], r["met"]) for r in rows] == [
        (0.1, 1000, None),
        (0.25, 2500, True),
        (0.5, 5000, False),
    ]
    assert "| 25% of max | 2,500 | 100/100 | 25 | 50 | p99 ≤ 50 ms | PASS |" in floor_report.markdown(
        [], rows
    )
