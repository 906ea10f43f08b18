"""`responder assets ...` on an embedded SQLite, without MLflow: validate, sync, show, graph."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from responder.assets.model import node
from responder.assets.store import replace_source
from responder.cli import app
from responder.storage.database import make_engine
from tests.conftest import ROOT

runner = CliRunner()
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

HOSTILE = """\
teams: [{id: fraud-ml, name: "[bold red]Fraud[/bold red]"}]
endpoints:
  - id: fraud-api
    serves: fraud-detector@champion
    owner: fraud-ml
    tags: {note: "[link=https://evil.example]click[/link]"}
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "assets"
    directory.mkdir()
    (directory / "serving.yaml").write_text(HOSTILE)
    monkeypatch.setenv("RESPONDER_DATABASE__URL", f"sqlite:///{tmp_path / 'responder.db'}")
    monkeypatch.setenv("RESPONDER_ASSETS__DIR", str(directory))
    monkeypatch.delenv("RESPONDER_MLFLOW__TRACKING_URI", raising=False)
    return directory


def test_validate_the_shipped_directory() -> None:
    """`assets validate assets` summarizes each file and says OK."""
    result = runner.invoke(app, ["assets", "validate", str(ROOT / "assets")])
    assert result.exit_code == 0, result.output
    assert "assets/fraud-scoring.yaml: 1 api_key, 1 endpoint, 1 image, 1 model, 1 service; 9 " in (
        result.stdout
    )
    assert "OK: 2 asset files in" in result.stdout


def test_validate_reports_file_line_field_and_exits_1(tmp_path: Path) -> None:
    """A bad file: exit 1, the problem on stderr as file:line: field: message."""
    (tmp_path / "x.yaml").write_text("endpoints:\n  - id: e\n    tier: urgent\n")
    result = runner.invoke(app, ["assets", "validate", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'x.yaml'}:3: endpoints.0.tier: Input should be" in result.output


def test_sync_then_show_and_graph_print_hostile_text_literally(env: Path) -> None:
    """Markup in names and tags is printed as written; control characters (a registry tag:
    files refuse them) become `?`."""
    synced = runner.invoke(app, ["assets", "sync"])
    assert synced.exit_code == 0, synced.output
    assert "assets/serving.yaml: 2 assets, 2 edges" in synced.stdout
    assert "MLflow is not configured" in synced.output
    engine = make_engine(os.environ["RESPONDER_DATABASE__URL"])
    with Session(engine) as session, session.begin():
        tagged = node("endpoint:fraud-api", "mlflow", T0, tags={"bell": "ring\athe\x1b[2Jbell"})
        replace_source(session, "mlflow", [tagged], [])
    engine.dispose()

    shown = runner.invoke(app, ["assets", "show", "fraud-api"])
    assert shown.exit_code == 0, shown.output
    assert "note: [link=https://evil.example]click[/link]" in shown.stdout
    assert "bell: ring?the?[2Jbell" in shown.stdout
    assert "\x1b" not in shown.stdout and "\a" not in shown.stdout

    team = runner.invoke(app, ["assets", "show", "team:fraud-ml", "--json"])
    assert json.loads(team.stdout)["node"]["name"] == "[bold red]Fraud[/bold red]"

    tree = runner.invoke(app, ["assets", "graph", "alias:fraud-detector@champion"])
    assert tree.exit_code == 0, tree.output
    assert tree.stdout.splitlines() == [
        "alias:fraud-detector@champion (not described)",
        "└── ← serves endpoint:fraud-api",
        "    └── → owned_by team:fraud-ml",
    ]


def test_a_sync_with_invalid_files_exits_1_and_keeps_the_old_state(env: Path) -> None:
    """The file:line errors are printed; what the files said before is still there."""
    assert runner.invoke(app, ["assets", "sync"]).exit_code == 0
    (env / "serving.yaml").write_text("endpoints:\n  - id: x\n    colour: red\n")
    failed = runner.invoke(app, ["assets", "sync"])
    assert failed.exit_code == 1
    assert "serving.yaml:3: endpoints.0.colour: Extra inputs are not permitted" in failed.output
    assert runner.invoke(app, ["assets", "show", "endpoint:fraud-api"]).exit_code == 0
