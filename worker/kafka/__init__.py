"""Thin aiokafka adapters: client factories (`clients`) and topic administration (`topics`).

No batching, committing or retry policy lives here: that is `worker.runtime` (K2–K8).
"""
