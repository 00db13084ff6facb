"""The Kafka worker's runtime (DESIGN §6, K1–K8): the one owner of batches and transactions.

- `member`: one consumer-group member — collect (K4), decide, commit (K2), rebalance (K5),
  recovery (K8), shutdown (K6); the lifecycle and aiokafka's limits are described there.
- `commit`: exactly_once (transaction per batch) and at_least_once committers; routing (K1, K3).
- `decide`: one record → one output; retries of bugs → dead letter; waits on ConfigUnavailable.
- `service`: one process — configuration source, metrics/health HTTP, signals, progress.
- `processes`: `--processes N` (K7).
"""
