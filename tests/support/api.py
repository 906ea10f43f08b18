"""The REST API under test: the real app (bootstrap.api_app) on a test database and per-test
Kafka topics, with a token for every role."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from responder import bootstrap
from responder.service import tokens
from responder.service.identity import Role
from responder.settings import KafkaSettings, Settings, Topics
from tests.support.harness import TOPICS, topic, wait_for
from tests.support.signing import command_settings


def api_settings(db_url: str, bootstrap_servers: str, unique: str, **api: Any) -> Settings:
    return bootstrap.load_settings(
        {
            "database": {"url": db_url},
            "kafka": {
                "bootstrap_servers": bootstrap_servers,
                "group_prefix": f"t-{unique}",
                "partitions": 2,
                "topics": {name: topic(unique, name) for name in TOPICS},
            },
            "api": api,
            "commands": command_settings(),
        }
    )


def kafka_of(settings: Settings) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_prefix=settings.kafka.group_prefix,
        topics=Topics(**settings.kafka.topics.model_dump()),
    )


def issue_tokens(engine: Engine, suffix: str = "") -> dict[Role, str]:
    """One live token per role, named after it (`viewer`, `admin`, ...)."""
    secrets: dict[Role, str] = {}
    with Session(engine) as session, session.begin():
        for role in Role:
            _, secrets[role] = tokens.issue(
                session, name=f"{role.value}{suffix}", role=role.value, actor="system"
            )
    return secrets


@dataclass
class Api:
    client: TestClient
    app: FastAPI
    settings: Settings
    engine: Engine
    tokens: dict[Role, str] = field(default_factory=dict)

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@contextmanager
def running_api(engine: Engine, settings: Settings) -> Iterator[Api]:
    app = bootstrap.api_app(settings, engine=engine)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, app, settings, engine, issue_tokens(engine))


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """The app on a real socket (uvicorn in a thread, a free loopback port); yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), 60)
        assert server.started, "the API did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
