"""Versions declared in more than one file agree: the Kafka that scripts/kafka runs (tests, CI,
benchmarks) is the one docker-compose.yml runs, and the lock files pin what pyproject.toml asks
for, for the Python of the image."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

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


# --- the lock files (`make lock`) against pyproject.toml and the Dockerfile -------------------

LOCKS = {  # lock file: the extras it holds besides the runtime dependencies
    "requirements.lock": (),
    "requirements-mlflow.lock": ("mlflow",),
    "requirements-dev.lock": ("dev", "mlflow"),
}


def _pins(lock: str) -> dict[str, Version]:
    text = (ROOT / lock).read_text()
    return {
        canonicalize_name(name): Version(version)
        for name, version in re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", text, flags=re.M)
    }


@pytest.mark.parametrize(("lock", "extras"), LOCKS.items())
def test_lock_pins_what_pyproject_requires(lock: str, extras: tuple[str, ...]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        wanted += [Requirement(r) for r in project["optional-dependencies"][extra]]
    pins = _pins(lock)
    unmet = []
    for r in wanted:
        if r.marker is not None and not r.marker.evaluate():
            continue
        pin = pins.get(canonicalize_name(r.name))
        if pin is None or not r.specifier.contains(pin, prereleases=True):
            unmet.append(f"{r} (locked: {pin})")
    assert not unmet, f"{lock} does not fit pyproject.toml ({unmet}): run `make lock`"


def test_locks_pin_the_same_versions() -> None:
    dev = _pins("requirements-dev.lock")
    for lock in LOCKS:
        assert {n: v for n, v in _pins(lock).items() if dev.get(n) != v} == {}, lock


def test_locks_are_for_the_python_of_the_image() -> None:
    [locked] = re.findall(r"^LOCK_PYTHON := (\S+)$", (ROOT / "Makefile").read_text(), flags=re.M)
    images = re.findall(
        r"^FROM python:(\S+?)-slim\b", (ROOT / "Dockerfile").read_text(), flags=re.M
    )
    assert images and set(images) == {locked}
