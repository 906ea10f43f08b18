"""docker-compose.yml publishes nothing beyond this host and has no default password."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
REQUIRED = re.compile(r"\$\{([A-Z_]+):\?[^}]+\}")


def test_every_published_port_is_bound_to_localhost() -> None:
    ports = [p for s in COMPOSE["services"].values() for p in s.get("ports", [])]
    assert ports
    assert all(str(p).startswith("127.0.0.1:") for p in ports), ports


def test_secrets_come_from_the_env_file_and_have_no_default() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    postgres = COMPOSE["services"]["postgres"]["environment"]
    assert REQUIRED.fullmatch(postgres["POSTGRES_PASSWORD"])
    url = COMPOSE["x-responder"]["environment"]["RESPONDER_DATABASE__URL"]
    assert "${POSTGRES_PASSWORD:?" in url
    assert "responder:responder@" not in text and "PASSWORD: responder" not in text
    needed = set(REQUIRED.findall(text))
    example = (ROOT / ".env.example").read_text().splitlines()
    listed = {line.split("=", 1)[0] for line in example if line and not line.startswith("#")}
    assert (
        needed
        == listed
        == {"POSTGRES_PASSWORD", "RESPONDER_COMMANDS__ISSUERS", "RESPONDER_AUDIT__KEY"}
    )
    assert all(line.endswith("=") for line in example if line and not line.startswith("#"))
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
