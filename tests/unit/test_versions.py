"""Versions declared in more than one file agree: the Kafka that scripts/kafka runs (tests, CI,
benchmarks) is the one docker-compose.yml runs."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _script_kafka_versions() -> tuple[str, str]:
    """The default in scripts/kafka's code and the one its usage text states."""
    script = (ROOT / "scripts" / "kafka").read_text()
    [code] = re.findall(r'^VERSION="\$\{KAFKA_VERSION:-([^}]+)\}"$', script, flags=re.M)
    [usage] = re.findall(r"^#\s+KAFKA_VERSION\b.*\(default ([^)]+)\)$", script, flags=re.M)
    return code, usage


def test_scripts_kafka_usage_states_its_default() -> None:
    code, usage = _script_kafka_versions()
    assert usage == code


def test_docker_compose_runs_the_kafka_of_scripts_kafka() -> None:
    code, _ = _script_kafka_versions()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    image = compose["services"]["kafka"]["image"]
    assert image == f"apache/kafka:{code}"
