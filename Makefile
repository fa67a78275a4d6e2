# Pitch In — every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PYTEST := $(PY) -m pytest
# Processes of each service in `make run` and `make bench` (as pods; e.g. REPLICAS=2 make run);
# matching has its own count, MATCHING_REPLICAS (its donor index is per process).
REPLICAS ?= $(or $(PITCHIN_REPLICAS),1)
MATCHING_REPLICAS ?= $(or $(PITCHIN_MATCHING_REPLICAS),1)
REPLICAS_ENV := PITCHIN_REPLICAS=$(REPLICAS) PITCHIN_MATCHING_REPLICAS=$(MATCHING_REPLICAS)

.PHONY: help setup run stop lint typecheck unit integration e2e browser chart standards test bench simulate contracts clean

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $@

setup: $(STAMP)  ## install Python packages, PostgreSQL 15, Java/Maven check, Kafka jars
	bash deploy/local/install.sh

run: setup  ## start Kafka, PostgreSQL, SMTP sink and the four services with demo data; Ctrl-C stops all
	$(REPLICAS_ENV) $(PY) deploy/local/run.py

stop:  ## stop a `make run` left in the background
	-$(PY) deploy/local/run.py --stop

lint: $(STAMP)  ## ruff lint and format check
	$(VENV)/bin/ruff check libs services tests deploy
	$(VENV)/bin/ruff format --check libs services tests deploy

typecheck: $(STAMP)  ## mypy --strict over libs and services
	$(VENV)/bin/mypy libs services tests deploy/local deploy/observability

unit: $(STAMP)  ## fast tests: domain rules, contracts, codecs (no servers)
	$(PYTEST) -q tests/unit services

integration: setup  ## one component against the real Kafka and PostgreSQL
	$(PYTEST) -q tests/integration

e2e: setup  ## the services as processes through real Kafka, PostgreSQL and SMTP
	$(PYTEST) -q tests/e2e

browser: setup  ## the web pages' journeys in Debian's Chromium, with axe-core accessibility checks
	bash deploy/web/install.sh
	$(PYTEST) -q tests/browser

chart: setup  ## render and validate the Helm chart (tools built once, cached)
	bash deploy/tools/install-ops-tools.sh
	$(PYTEST) -q tests/chart

standards: setup  ## third-party judges: OpenAPI, AsyncAPI CLI, CloudEvents SDK, Standard Webhooks, iCalendar readers, OSDI and docs examples
	bash deploy/tools/install-standards-tools.sh >/dev/null
	PITCHIN_STANDARDS_REQUIRED=1 $(PYTEST) -q tests/standards

test: setup lint typecheck  ## everything CI runs: lint, types, unit, standards, integration, e2e, browser, chart
	bash deploy/tools/install-ops-tools.sh
	bash deploy/kubernetes/install.sh
	bash deploy/observability/install.sh
	bash deploy/web/install.sh
	bash deploy/tools/install-standards-tools.sh >/dev/null
# Integration tests SIGKILL and restart the session's shared Kafka and PostgreSQL: they run before
# anything starts the services on them (the standards judges that read a running stack, e2e).
	PITCHIN_STANDARDS_REQUIRED=1 $(PYTEST) -q tests/unit services tests/integration tests/standards tests/e2e tests/browser tests/chart

bench: setup  ## benchmarks that print figures beside this machine's raw Kafka/PostgreSQL limits
	bash deploy/tools/install-bench-tools.sh
	$(REPLICAS_ENV) $(PY) -m tests.bench

simulate: $(STAMP)  ## a strike week in memory (10,000 donors, 500 needs): Pitch In against two baselines, with the targets
	$(PY) -m pitchin_matching.simulation $(SIMULATE_ARGS)

contracts: $(STAMP)  ## regenerate every generated file: docs/contracts, the topic tables, the chart's dashboards
	$(PY) -m pitchin_core.contracts.docs
	$(PY) deploy/observability/dashboards.py
	$(PY) deploy/tools/access_table.py

clean:  ## remove local and test state (keeps the download cache in ~/.cache/pitchin)
	-$(PY) deploy/local/run.py --reset
	rm -rf .state .mypy_cache .ruff_cache
