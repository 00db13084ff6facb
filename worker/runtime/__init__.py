"""The Kafka worker's runtime (DESIGN §6, K1–K11): the one owner of batches and transactions.

- `member`: one consumer-group member — collect (K4), decide, commit (K2), rebalance (K5),
  recovery (K8), shutdown (K6); the lifecycle and aiokafka's limits are described there.
- `checkpoint`: one batch from its first fetch to its commit; `recovery`: what is left to
  redo after a fault; `startup`: the topic checks and start-up retries (K10: fail fast).
- `commit`: exactly_once (transaction per batch) and at_least_once committers; routing (K1, K3).
- `decide`: a batch → one output per record; retries of bugs → dead letter; what waits on
  ConfigUnavailable (`Waiting`); `partitions`, `waits`: what a member knows per partition.
- `faults`: the fault model (K8–K10), `backoff`: the one retry policy (K8).
- `service`: one process — configuration source, metrics/health HTTP, signals, progress.
- `processes`: `--processes N` (K7).
"""
