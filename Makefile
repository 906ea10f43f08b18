# Developer entry points. Services run locally without Docker:
# scripts/kafka (KRaft single node) and scripts/postgres (a test cluster).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
KAFKA_PORT ?= 9092
export KAFKA_PORT

.PHONY: help install kafka-up kafka-down pg-up demo lint test bench

help:
	@echo "make install     create $(VENV) and install responder with the dev extras"
	@echo "make kafka-up    start the local Kafka broker (127.0.0.1:$(KAFKA_PORT))"
	@echo "make kafka-down  stop it"
	@echo "make pg-up       start the local PostgreSQL test server"
	@echo "make demo        run 'responder demo' against the local broker"
	@echo "make lint        ruff check, ruff format --check, mypy responder"
	@echo "make test        lint, start Kafka + PostgreSQL, run pytest"
	@echo "make bench       run bench/pipeline.py against the local broker"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev,mlflow]'
	@touch $@

kafka-up:
	scripts/kafka up

kafka-down:
	scripts/kafka down

pg-up:
	scripts/postgres up

# Stops Kafka afterwards only if this target started it.
demo: install
	@started=0; \
	if ! scripts/kafka status >/dev/null 2>&1; then scripts/kafka up; started=1; fi; \
	trap 'if [ $$started = 1 ]; then scripts/kafka down; fi' EXIT; \
	trap 'exit 130' INT TERM; \
	$(BIN)/responder demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy responder

test: lint
	scripts/kafka up
	scripts/postgres up
	RESPONDER_TEST_DATABASE_URL="$$(scripts/postgres url)" \
	RESPONDER_TEST_KAFKA=127.0.0.1:$(KAFKA_PORT) \
	$(BIN)/pytest -q

bench: install
	scripts/kafka up
	$(BIN)/python bench/pipeline.py
