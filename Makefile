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
# The lock files are resolved for this Python on Linux (the Dockerfile's base image is the same).
LOCK_PYTHON := 3.11
LOCK_FLAGS := --generate-hashes --python-version $(LOCK_PYTHON) \
	--python-platform x86_64-unknown-linux-gnu --custom-compile-command 'make lock' --quiet

.PHONY: help install lock kafka-up kafka-down pg-up demo lint test bench chaos

help:
	@echo "make install     create $(VENV) and install responder with the dev extras (from requirements-dev.lock)"
	@echo "make lock        regenerate the lock files from pyproject.toml (UPGRADE=1: newest allowed versions)"
	@echo "make kafka-up    start the local Kafka broker (127.0.0.1:$(KAFKA_PORT))"
	@echo "make kafka-down  stop it"
	@echo "make pg-up       start the local PostgreSQL test server"
	@echo "make demo        run 'responder demo' against the local broker"
	@echo "make lint        ruff check, ruff format --check, mypy responder tests bench; cargo fmt --check, clippy, its unit tests (native/)"
	@echo "make test        lint, start Kafka + PostgreSQL, run pytest, then the short fault suite (CHAOS=short)"
	@echo "make bench       run bench/pipeline.py against the local broker"
	@echo "make chaos       the fault suite on its own broker and PostgreSQL (CHAOS=short: the CI version)"

install: $(VENV)/.installed $(VENV)/.native

# Exactly the locked versions (runtime, dev and mlflow extras), then responder itself.
$(VENV)/.installed: pyproject.toml requirements-dev.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $@

# Then its compiled ingest and correlation paths (native/, Rust; cargo fetches the crates pinned in
# native/Cargo.lock), where cargo is found (on PATH or in ~/.cargo/bin). Without it responder
# runs its Python path (the same results, slower), and the next `make install` tries again.
CARGO := $(or $(shell command -v cargo),$(wildcard $(HOME)/.cargo/bin/cargo))
$(VENV)/.native: $(VENV)/.installed native/Cargo.toml native/Cargo.lock native/pyproject.toml \
		native/responder_native.pyi $(wildcard native/src/*.rs)
	@if [ -n "$(CARGO)" ]; then \
		PATH="$(abspath $(BIN)):$(dir $(CARGO)):$$PATH" $(BIN)/python -m pip install -q \
			--no-build-isolation --no-deps ./native && touch $@; \
	else \
		echo "cargo not found: responder-native (the compiled ingest and correlation paths) is not built"; \
	fi

# Pins that still fit pyproject.toml are kept unless UPGRADE=1. requirements.lock (the image)
# and requirements-mlflow.lock (the image with EXTRAS=mlflow) take their versions from
# requirements-dev.lock, so the image runs what the tests ran.
lock: install
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra mlflow $(LOCK_FLAGS) \
		$(if $(UPGRADE),--upgrade) -o requirements-dev.lock
	$(BIN)/uv pip compile pyproject.toml --extra mlflow -c requirements-dev.lock $(LOCK_FLAGS) \
		-o requirements-mlflow.lock
	$(BIN)/uv pip compile pyproject.toml -c requirements-dev.lock $(LOCK_FLAGS) -o requirements.lock

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
	$(BIN)/mypy responder tests bench
	@if [ -n "$(CARGO)" ]; then \
		$(CARGO) fmt --manifest-path native/Cargo.toml --check && \
		$(CARGO) clippy --manifest-path native/Cargo.toml --release --all-targets --quiet -- -D warnings && \
		$(CARGO) test --manifest-path native/Cargo.toml --release --quiet; \
	fi

test: lint
	scripts/kafka up
	scripts/postgres up
	RESPONDER_TEST_DATABASE_URL="$$(scripts/postgres url)" \
	RESPONDER_TEST_KAFKA=127.0.0.1:$(KAFKA_PORT) \
	$(BIN)/pytest -q
	$(BIN)/python bench/chaos.py --plan short

bench: install
	scripts/kafka up
	scripts/postgres up
	RESPONDER_BENCH_DATABASE_URL="$$(scripts/postgres url)" $(BIN)/python bench/pipeline.py
	$(BIN)/python bench/arrival_order.py
	$(BIN)/python bench/groups.py
	RESPONDER_BENCH_DATABASE_URL="$$(scripts/postgres url)" $(BIN)/python bench/evidence.py

# Its own broker (CHAOS_KAFKA_PORT, 19092) and PostgreSQL (CHAOS_PG_PORT, 15432): it kills them.
chaos: install
	$(BIN)/python bench/chaos.py --plan $(or $(CHAOS),full)
