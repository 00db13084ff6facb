"""Helpers shared by the test suites (real services only: DESIGN section 8), imported as
`tests.support.<module>` (pytest runs with `--import-mode=importlib`, the project root on the path).

    stack          the shared Kafka + PostgreSQL (`deploy/local/stack up`), fresh databases, topic names
    private_stack  a broker or PostgreSQL of a test's own (stop, restart, reconfigure), same script
    secure         the secured stack of tests/secure (SASL_SSL, mutual TLS, PostgreSQL TLS)
    kafka          aiokafka clients for tests: topics, reading a topic, a secured listener's options
    worker         the worker under test: topics, the store's communities, events for every reason,
                   worker processes and in-process workers, committed outputs by input position
    store          SQL from sync code, migrated databases, the admin CLI as a subprocess, tokens
    admin          the configuration service (`admin serve`) and its seed state
    core           hand-made tokens, events and configurations for the pure-core tests
    processes      stopping child processes; java_peer: the Kafka Java client as a peer
    ports          a free TCP port
    certs, node, promql   TLS certificates; npm packages; the alert rules and dashboard's PromQL

The example community itself (keys, secrets, fields, mappings) is `worker/devtools/examples.py`, shared
with the demo and the benchmarks.
"""
