"""Declared hardened versions: an endpoint names the version its alias may move to under attack."""

from __future__ import annotations

from pathlib import Path

import pytest

from responder.assets.declared import load_declared
from tests.conftest import ROOT
from tests.unit.test_assets_declared import T0, errors_of, write


def test_the_shipped_endpoint_declares_its_hardened_version() -> None:
    loaded = load_declared(ROOT / "assets", T0)
    [endpoint] = [n for d in loaded for n in d.nodes if n.id == "endpoint:fraud-scorer-v3"]
    assert endpoint.attributes["hardened_version"] == "4"
    assert endpoint.attributes["hardened_alias"] == "fraud-scorer@champion"


def test_a_hardened_version_is_an_attribute_of_the_endpoint(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        """
        endpoints:
          - id: scorer
            serves: fraud@champion
            hardened_version: 7
        """,
    )
    [declared] = load_declared(tmp_path, T0)
    [endpoint] = declared.nodes
    assert dict(endpoint.attributes) == {
        "hardened_version": "7",
        "hardened_alias": "fraud@champion",
    }


@pytest.mark.parametrize(
    ("serves", "version", "message"),
    [
        ("fraud/3", "7", "exactly one model@alias"),
        ("[fraud@champion, other@champion]", "7", "exactly one model@alias"),
        ("[]", "7", "exactly one model@alias"),
        ("fraud@champion", "seven", "should match pattern"),
        ("fraud@champion", "'7; drop'", "should match pattern"),
    ],
)
def test_a_hardened_version_needs_one_served_alias(
    tmp_path: Path, serves: str, version: str, message: str
) -> None:
    write(
        tmp_path,
        "a.yaml",
        f"""
        endpoints:
          - id: scorer
            serves: {serves}
            hardened_version: {version}
        """,
    )
    [error] = errors_of(tmp_path)
    assert error.startswith(f"{tmp_path / 'a.yaml'}:")
    assert message in error
