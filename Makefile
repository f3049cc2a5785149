# The command surface for people and CI. `make up` runs everything; `make test` proves it.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

INFRA := deploy/local/infra.sh
# Runs and stops the processes of `make up` (the Procfile, under honcho).
STACK := deploy/local/stack.sh
# Runs a command with the local stack's settings (CALSYNC_KAFKA_BOOTSTRAP, *_DATABASE_URL, ...).
WITH_ENV := deploy/local/with-env.sh
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PYTEST_ARGS ?=

.PHONY: help install up down test lint fmt bench bench-tools infra-up infra-down migrate schemas logs token

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install: ## install uv when missing, then the workspace (one lock file)
	@command -v uv >/dev/null 2>&1 || [ -x "$(UV)" ] || python3 -m pip install --quiet --user uv \
		|| python3 -m pip install --quiet --user --break-system-packages uv
	@$(UV) sync --frozen --all-packages

infra-up: ## start real Kafka (KRaft) and PostgreSQL from nothing; idempotent
	@bash $(INFRA) up

infra-down: ## stop Kafka and PostgreSQL; leaves no process behind
	@bash $(INFRA) down

migrate: install infra-up ## apply every service's database migrations
	@$(WITH_ENV) $(UV) run python deploy/local/migrate.py

up: install ## run the whole system on the sandbox (infra, emulator, 3 services); Ctrl-C stops all
	@UV=$(UV) bash $(STACK) up

# Only this checkout's processes (tracked in .run/stack/), stopped before what they depend on.
down: ## stop everything make up started: the processes, then Kafka and PostgreSQL
	@bash $(STACK) down

test: install infra-up ## every test (unit, integration, e2e) against the real local stack
	@$(WITH_ENV) $(UV) run python -m calsync_common.contracts.render --check .
	@$(WITH_ENV) $(UV) run pytest $(PYTEST_ARGS)

lint: install ## ruff (lint + format check) and mypy strict
	@$(UV) run ruff check .
	@$(UV) run ruff format --check .
	@$(UV) run mypy libs/common/src services/connector/src services/sync-worker/src services/availability/src emulators/msgraph/src

fmt: install ## format and fix what ruff can
	@$(UV) run ruff check --fix .
	@$(UV) run ruff format .

schemas: install ## render docs/events.md and docs/schemas/*.json from the contracts
	@$(UV) run python -m calsync_common.contracts.render .

bench-tools: ## the load generator the HTTP benches drive (wrk, a Debian package)
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; } >&2; } \
		|| { echo "wrk is missing: install it (Debian: apt-get install wrk)" >&2; exit 1; }

bench: install infra-up bench-tools ## baselines and every component's speed, JSON under bench/results/
	@mkdir -p bench/results
	@$(WITH_ENV) $(UV) run python bench/baseline.py --out bench/results/baseline.json
	@$(UV) run python bench/emulator_bench.py --out bench/results/emulator.json
	@$(WITH_ENV) $(UV) run python bench/plumbing_bench.py --out bench/results/plumbing.json
	@$(WITH_ENV) $(UV) run python bench/connector_bench.py --out bench/results/connector.json
	@$(WITH_ENV) $(UV) run python bench/sync_worker_bench.py --out bench/results/sync-worker.json
	@$(WITH_ENV) $(UV) run python bench/sync_worker_bench.py --only ingest --replicas 2 \
		--out bench/results/sync-worker-ingest-2-replicas.json
	@$(WITH_ENV) $(UV) run python bench/availability_projection_bench.py --out bench/results/availability-projection.json
	@$(WITH_ENV) $(UV) run python bench/availability_api_bench.py --out bench/results/availability-api.json
	@$(WITH_ENV) $(UV) run python bench/availability_vs_graph_bench.py --out bench/results/availability-vs-graph.json
	@$(UV) run python bench/free_slots_bench.py --out bench/results/free-slots.json

token: install ## mint a bearer token: make token SUB_ACCOUNT=sa-1 | SERVICE=sync-worker [AUDIENCE=calsync-availability] [SUBJECT=..] [LIFETIME=3600]
	@$(UV) run python -m calsync_connector.mint_token \
		$(if $(SUB_ACCOUNT),--sub-account "$(SUB_ACCOUNT)") $(if $(SERVICE),--service "$(SERVICE)") \
		$(if $(SUBJECT),--subject "$(SUBJECT)") $(if $(LIFETIME),--lifetime "$(LIFETIME)") \
		$(if $(AUDIENCE),--audience "$(AUDIENCE)")

logs: ## follow the infrastructure logs
	@tail -n 50 -F .run/kafka/logs/*.log .run/postgres/*.log
