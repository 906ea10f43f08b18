"""Shared fixtures: the real Kafka broker and databases (SQLite and PostgreSQL) for tests.

`make test` starts Kafka (scripts/kafka) and PostgreSQL (scripts/postgres) and passes their
addresses in RESPONDER_TEST_KAFKA and RESPONDER_TEST_DATABASE_URL. Integration tests fail, not
skip, when those services are missing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, create_engine, text
from structlog._config import BoundLoggerLazyProxy

from responder.logs.setup import CAPPED_LOGGERS, NOISY_LOGGERS
from responder.storage.database import make_engine, upgrade
from tests.support.harness import delete_topics_of

ROOT = Path(__file__).resolve().parent.parent
KAFKA = os.environ.get("RESPONDER_TEST_KAFKA", "127.0.0.1:9092")

# Property-based runs: bounded and reproducible in CI (`ci`, the default), long with
# HYPOTHESIS_PROFILE=fuzz (tests that fix their own max_examples keep it in both).
settings.register_profile(
    "ci", max_examples=100, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
settings.register_profile(
    "fuzz", max_examples=20_000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)  # fmt: skip
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _port_open(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


# Every `unique` handed out in this session: its topics are deleted when the session ends, so
# runs do not pile up partitions on the broker (each one holds open files there).
_UNIQUES: set[str] = set()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    if not _port_open(KAFKA):
        port = KAFKA.rsplit(":", 1)[1]
        subprocess.run(
            [str(ROOT / "scripts" / "kafka"), "up"],
            check=True,
            env={**os.environ, "KAFKA_PORT": port},
        )
    yield KAFKA
    if _UNIQUES and _port_open(KAFKA):
        asyncio.run(delete_topics_of(KAFKA, _UNIQUES))


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("RESPONDER_TEST_DATABASE_URL")
    if not url:
        pytest.fail(
            "RESPONDER_TEST_DATABASE_URL is not set: run `make test` "
            "(it starts PostgreSQL with scripts/postgres)"
        )
    return url


def schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test (dropped afterwards)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema_url(postgres_url, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store test runs on both the embedded default and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'responder.db'}"
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def db(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """`responder.logs.configure` rewires the root logger and structlog, and every command a
    test runs calls it (`bootstrap.load_settings`): put both back after each test. A module's
    structlog logger keeps what it was configured with on its first use
    (`cache_logger_on_first_use`), so those kept are dropped too: a logger first used under a
    command's configuration otherwise escaped a later test's `capture_logs` and wrote to that
    command's closed capture stream (the sink's "evidence is full" test failed so, after the
    unit tests, in file order)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    noisy = {n: logging.getLogger(n).level for n in (*NOISY_LOGGERS, *CAPPED_LOGGERS)}
    configured_before = structlog.is_configured()  # by a wider fixture (a live server): kept
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, lvl in noisy.items():
            logging.getLogger(name).setLevel(lvl)
        if structlog.is_configured() and not configured_before:
            structlog.reset_defaults()
            _forget_cached_loggers()


def _forget_cached_loggers() -> None:
    """Drop the configuration each of our modules' loggers kept on its first use."""
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(("responder", "tests")):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, BoundLoggerLazyProxy):
                value.__dict__.pop("bind", None)  # the cached bind: the class's lazy one again


@pytest.fixture
def unique() -> str:
    value = uuid.uuid4().hex[:10]
    _UNIQUES.add(value)
    return value
