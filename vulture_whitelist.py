"""Names vulture (`make lint`) cannot see used: each is called or read by a framework.

Vulture reads names, not frameworks. Its configuration (pyproject.toml, [tool.vulture])
already skips FastAPI routes, click commands, pydantic validators, pytest fixtures,
`model_config` and `pytestmark`; what remains is listed here, grouped by who uses it. A
name added here must be used by a framework, never merely unused: dead code is deleted.
"""

# vulture's whitelist format: bare `_.name` expressions, never run.
# ruff: noqa: B018, F821

# pydantic: fields of the output records (DESIGN §2), filled by validation, written by
# model_dump, read by no Python line.
_.screenname
_.firstname
_.lastname
_.company
_.avatar_url
_.gender
_.emails
_.home_phones
_.mobile_phones
_.expires_at
_.processed_at
_.mapping_skipped
_.raw_encoding
_.raw_truncated
_.raw_bytes
_.raw_sha256
_.error_message

# pydantic-settings: Kafka security settings read by name (kafka/security.py `_secret`,
# `_one_of`) and SASL mechanisms chosen by value from the environment.
_.kafka_ssl_key_password
_.kafka_ssl_key_password_file
_.kafka_sasl_username_file
_.kafka_sasl_password
_.kafka_sasl_password_file
_.PLAIN
_.SCRAM_SHA_256
_.SCRAM_SHA_512

# click: a ParamType's conversion hook (cli/offline.py).
_.convert

# aiokafka: the rebalance listener's callbacks (kafka/consumer.py) and the per-partition
# record iterator's hook (kafka/fetcher_fork.py).
_.on_partitions_revoked
_.on_partitions_assigned
_._unpack_records

# uvicorn: the flag its main loop reads to stop (ops/http.py `OpsServer.close`).
_.should_exit

# RE2: an option set on the options object (core/config.py).
_.log_errors

# PyYAML: `increase_indent`'s parameter, kept for the overridden signature (store/yaml_io.py).
indentless

# bench: PacedResult/BacklogResult fields read through dataclasses.asdict for the report
# (bench/kafka_bench.py, bench/kbench/floor_report.py).
_.achieved_input
_.max_ms
_.loadavg

# The console's templates read these (worker/admin/templates/communities.html).
_.top_reason
# http.server: the request handler's hooks of tests/support/otlp.py's OTLP receiver.
_.do_POST
_.log_message

# aiokafka's protocol classes: class attributes its connection reads (kafka/offsets.py,
# kafka/transactions.py).
_.API_VERSION
_.FLEXIBLE_VERSION
_.RESPONSE_TYPE
