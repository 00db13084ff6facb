"""Helpers of `bench/kafka_bench.py` (issue 6): workload, Kafka I/O, CPU accounting, references, plot."""
