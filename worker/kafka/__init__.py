"""Thin aiokafka adapters: client factories (`clients`), topic administration (`topics`) and
the security options every client gets, with the classification of security faults (`security`).

No batching, committing or retry policy lives here: that is `worker.runtime` (K2–K8).
"""
