"""Thin aiokafka adapters: client factories (`clients`), the member's consumer and producer
behind typed wrappers that hold aiokafka's internals (`consumer`, `producer`), reading fetched
batches (`fetched`), topic administration (`topics`) and the security options every client
gets, with the classification of security faults (`security`).

No batching, committing or retry policy lives here: that is `worker.runtime` (K2–K8).
"""
