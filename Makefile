# identity-worker — everyday commands. The two that matter first:
#   make demo   the whole product end to end on a real Kafka + PostgreSQL, then stops them
#   make test   the whole test suite on a real Kafka + PostgreSQL, plus lint
# Both build the virtual environment and start the local stack (deploy/local/stack) first.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON3 ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed-from-pyproject
STACK := deploy/local/stack
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-x -k kafka"`.
PYTEST_ARGS ?=
# KEEP_STACK=1 leaves the stack running after `make test` / `make demo`.
KEEP_STACK ?=
# The port of `make admin`'s configuration service.
ADMIN_PORT ?= 8080

.PHONY: help prerequisites venv stack-up stack-down stack-status test test-suite lint run demo schemas bench bench-scale admin send-events settings-doc console-screenshots chaos

help:
	@echo "make demo          example events through the real worker, printed as a table"
	@echo "make test          the whole suite on a real Kafka + PostgreSQL, then lint"
	@echo "make run           start the stack, migrate, create topics, run the worker"
	@echo "make admin         the configuration service and a worker, with the example community, two tokens,"
	@echo "                   the example secret, a sample token and the command that sends example events"
	@echo "make send-events   example events through the worker that make admin runs"
	@echo "make stack-up      start Kafka + PostgreSQL; prints the exports"
	@echo "make stack-down    stop them and remove their data"
	@echo "make stack-status  what runs where"
	@echo "make lint          ruff check, ruff format --check, mypy, vulture (dead code), import contracts"
	@echo "make schemas       regenerate schemas/ from the models"
	@echo "make settings-doc  regenerate docs/settings.md from the settings model"
	@echo "make bench         Kafka benchmark of the worker vs its floor and references, ~5 min (docs/performance.md)"
	@echo "make bench-scale   the worker with 1 000, 10 000, 100 000 communities (docs/scale.md, T1-T6)"
	@echo "make chaos         broker restart campaign: RESTARTS=200 kills/stops/freezes, 1 and 3 brokers"
	@echo "make venv          (re)build .venv when pyproject.toml changed"

venv: $(VENV_STAMP)

# Debian packages the tests use (kcat, ...): deploy/local/debian-packages.txt.
prerequisites:
	@deploy/local/prerequisites

# Reinstalls only when pyproject.toml is newer than the stamp.
$(VENV_STAMP): pyproject.toml
	@$(PYTHON3) -c 'import ensurepip, venv' 2>/dev/null || { \
	    echo "make: $(PYTHON3) cannot create virtual environments: apt-get install python3-venv" >&2; \
	    exit 1; }
	$(PYTHON3) -m venv $(VENV)
	@echo "make venv: installing the package and its dev/bench dependencies into $(VENV) (about 2 min the first time; pip shows each package)" >&2
	$(PY) -m pip install --disable-pip-version-check --progress-bar on -e '.[dev,bench]'
	@touch $@

stack-up:
	@$(STACK) up

stack-down:
	@$(STACK) down

stack-status:
	@$(STACK) status || true

# Runs $(1) with KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL from `stack up` and stops the
# stack afterwards, whatever happens (failure, Ctrl-C) — unless KEEP_STACK=1 or both
# variables were already set (then `up` started nothing and there is nothing to stop).
define with_stack
	@given=$${KAFKA_BOOTSTRAP_SERVERS:+k}$${DATABASE_URL:+d}; \
	stop() { \
	    if [[ -z "$(KEEP_STACK)" && $$given != kd ]]; then $(STACK) down; \
	    else echo "make: the stack stays up (make stack-down stops it)" >&2; fi; }; \
	trap stop EXIT; trap 'exit 130' INT TERM; \
	exports=$$($(STACK) up); eval "$$exports"; \
	$(1)
endef

# The whole suite (pytest exit 5, "no tests collected", fails like any other error),
# then lint; non-zero when either failed.
test: venv
	@failed=; start=$$(date +%s); \
	$(MAKE) --no-print-directory test-suite || failed=tests; \
	$(MAKE) --no-print-directory lint || failed="$${failed:+$$failed and }lint"; \
	took=$$(( $$(date +%s) - start )); \
	if [[ -n $$failed ]]; then echo "make test: FAILED ($$failed) in $${took}s" >&2; exit 1; fi; \
	echo "make test: passed in $${took}s" >&2

test-suite: venv prerequisites
	$(call with_stack,$(PY) -m pytest -ra $(PYTEST_ARGS))

# All run, so one report shows every problem; non-zero when any failed. lint-imports checks the
# layers of docs/architecture.md (pyproject.toml [tool.importlinter]).
lint: venv
	@rc=0; \
	echo "$(PY) -m ruff check ." >&2; $(PY) -m ruff check . || rc=1; \
	echo "$(PY) -m ruff format --check ." >&2; $(PY) -m ruff format --check . || rc=1; \
	echo "$(PY) -m mypy" >&2; $(PY) -m mypy || rc=1; \
	echo "$(PY) -m vulture" >&2; $(PY) -m vulture || rc=1; \
	echo "$(VENV)/bin/lint-imports" >&2; $(VENV)/bin/lint-imports --no-cache --no-logo || rc=1; \
	exit $$rc

# Leaves the stack running (the worker runs until Ctrl-C); `make stack-down` stops it.
run: venv
	@exports=$$($(STACK) up); eval "$$exports"; \
	$(VENV)/bin/identity-worker db migrate; \
	$(VENV)/bin/identity-worker topics create; \
	exec $(VENV)/bin/identity-worker run

demo: venv
	$(call with_stack,$(PY) -m worker.devtools.demo)

# The configuration service and a worker: stack, migrations, the example community, topics, a
# platform and a community token printed with the console's URL, the example secret, a sample
# token and `make send-events`; runs until Ctrl-C, the stack stays up.
admin: venv
	@exports=$$($(STACK) up); eval "$$exports"; \
	exec $(PY) -m worker.devtools.quickstart --port $(ADMIN_PORT) --worker-log .stack/admin-worker.log

# The example events through a running worker (`make admin` starts one): keys show usage, Health fills.
send-events: venv
	@exports=$$($(STACK) up); eval "$$exports"; \
	$(PY) -m worker.devtools.send_events

# Re-takes the console screenshots of the README (docs/console/) in headless chromium.
console-screenshots: venv
	$(call with_stack,CONSOLE_SCREENSHOTS_DIR=docs/console $(PY) -m pytest -q $(wildcard tests/admin/test_console*.py))

schemas: venv
	$(PY) -m worker.devtools.schemas

# Regenerates docs/settings.md (the settings reference) from worker/settings.py.
settings-doc: venv
	$(PY) -m worker.devtools.settings_doc

# The Kafka benchmark (docs/performance.md): the worker, the floor reference, the pass-through and
# jwt.decode references, delay at 10/25/50/75 % of max; about 4-5 minutes on 2 cores; exits 1 on any
# missing, duplicated or wrongly decided output. Leaves the stack running. BENCH_ARGS adds options,
# e.g. BENCH_ARGS="--only mix,unique,repeat90,rs256,floor" (no delay levels, no p2/alo).
BENCH_ARGS ?=
bench: venv
	eval "$$($(STACK) up)" && $(PY) bench/kafka_bench.py --events 100000 --hs-share 0.8 \
	    --repeat-share 0.0 --invalid-share 0.05 --partitions 4 $(BENCH_ARGS)

# DESIGN §12 (T1-T6): N = 1 000, 10 000, 100 000 communities; about 15 minutes; docs/scale.md.
SCALE_SIZES ?= 1000,10000,100000
bench-scale: venv
	eval "$$($(STACK) up)" && $(PY) bench/scale.py --sizes $(SCALE_SIZES)

# Broker restart campaigns (docs/fault-model.md): RESTARTS broker faults (graceful, SIGKILL,
# SIGSTOP then SIGKILL) on private single-node and 3-node clusters, PER_RUN per worker stream;
# one JSON line per run, a total at the end; non-zero when any run duplicated or lost.
RESTARTS ?= 200
PER_RUN ?= 10
CHAOS_BROKERS ?= 1,3
chaos: venv
	$(call with_stack,$(PY) -m tests.support.chaos --restarts $(RESTARTS) --per-run $(PER_RUN) \
	    --brokers $(CHAOS_BROKERS))
