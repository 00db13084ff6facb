"""Where the worker's CPU goes per event (issue 6): the pure pipeline under cProfile.

    .venv/bin/python bench/profile_worker.py [--events 5000] [--top 25]

Times, in this process and without Kafka, `process_event` (with the C4 token cache) over
unique HS256 tokens, over 90%-repeated HS256 tokens, and a bare `jwt.decode` over the same
tokens, then prints the cProfile of the unique-token pass (sorted by own time). The Kafka side
of the per-event cost is what the pass-through reference of bench/kafka_bench.py measures.
For the running worker process use py-spy (`py-spy record -o out.svg --pid <worker pid>`).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import jwt  # noqa: E402
from kbench import workload  # noqa: E402
from kbench.procstat import self_cpu  # noqa: E402

from worker.core.config import load_config_file  # noqa: E402
from worker.core.contracts import Source  # noqa: E402
from worker.core.pipeline import process_event  # noqa: E402
from worker.core.tokencache import TokenCache  # noqa: E402


def per_event(values: list[bytes], communities: dict, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        cache = TokenCache()
        start = self_cpu()
        for i, value in enumerate(values):
            process_event(
                value,
                lookup=communities,
                now=time.time(),
                source=Source("identity.raw", 0, i),
                token_cache=cache,
            ).to_json()
        best = min(best, (self_cpu() - start) / len(values))
    return best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=5000)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    keys = workload.Keys.generate()
    tmp = Path("/tmp") / f"profile-worker-{time.time_ns()}.yaml"
    tmp.write_text(workload.community_yaml("bench", keys))
    communities = load_config_file(str(tmp))
    tmp.unlink()
    unique = workload.build(workload.WorkloadSpec(args.events, 1.0, 0.0, 0.0, seed=7), "bench", keys)
    repeat = workload.build(workload.WorkloadSpec(args.events, 1.0, 0.9, 0.0, seed=8), "bench", keys)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        key = workload.HMAC_SECRET.encode()
        start = self_cpu()
        for token, _ in unique.good_tokens:
            jwt.decode(token, key, algorithms=["HS256"])
        jwt_cpu = (self_cpu() - start) / len(unique.good_tokens)
    u = per_event(unique.values, communities)
    r = per_event(repeat.values, communities)
    print(f"process_event + to_json, unique HS256:      {u * 1e6:7.1f} µs CPU/event")
    print(f"process_event + to_json, 90% repeated:      {r * 1e6:7.1f} µs CPU/event  (×{u / r:.2f} faster)")
    print(f"bare jwt.decode, unique HS256:              {jwt_cpu * 1e6:7.1f} µs CPU/event")
    print(f"pipeline work besides jwt.decode (unique):  {(u - jwt_cpu) * 1e6:7.1f} µs CPU/event\n")
    for label, values in (("unique HS256", unique.values), ("90% repeated", repeat.values)):
        prof = cProfile.Profile()
        cache = TokenCache()
        prof.enable()
        for i, value in enumerate(values):
            process_event(
                value, lookup=communities, now=time.time(), source=Source("t", 0, i), token_cache=cache
            ).to_json()
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(args.top)
        print(f"=== cProfile, {label}, {len(values)} events, sorted by own time ===")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
