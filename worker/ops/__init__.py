"""Operating the worker (DESIGN §7): Prometheus metrics, health HTTP endpoints, JSON logs, progress."""
