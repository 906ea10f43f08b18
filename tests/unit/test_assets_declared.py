"""Declared assets (`assets/*.yaml`): the shipped example, the README's, and file:line errors."""

from __future__ import annotations

import re
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from responder.assets.declared import MAX_FILE_BYTES, load_declared
from responder.assets.graph import AssetGraph
from responder.assets.model import EdgeKind, NodeKind
from responder.yamlfiles import YamlFileError
from tests.conftest import ROOT

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

TEAMS = """\
teams:
  - id: fraud-ml
    name: Fraud ML
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(directory: Path) -> list[str]:
    with pytest.raises(YamlFileError) as caught:
        load_declared(directory, T0)
    return caught.value.messages


def test_the_shipped_assets_directory_loads() -> None:
    """`assets/` at the repository root: an endpoint serving the champion alias of the demo's
    model, its image and key, the CI service sharing the key, owners and tiers."""
    loaded = load_declared(ROOT / "assets", T0)
    assert {d.source for d in loaded} == {"assets/fraud-scoring.yaml", "assets/teams.yaml"}
    graph = AssetGraph([n for d in loaded for n in d.nodes], [e for d in loaded for e in d.edges])
    endpoint = graph.node("endpoint:fraud-scorer-v3")
    assert endpoint is not None and endpoint.tier == "critical"
    assert dict(endpoint.tags) == {"env": "prod"}
    out, _ = graph.edges_of("endpoint:fraud-scorer-v3")
    assert {(e.kind, e.dst) for e in out} == {
        (EdgeKind.serves, "alias:fraud-scorer@champion"),
        (EdgeKind.runs, "image:registry.internal/ml/fraud-scorer-serving:3.2.0"),
        (EdgeKind.uses, "api_key:AKIAEXAMPLELEAKED01"),
        (EdgeKind.owned_by, "team:fraud-ml"),
    }
    blast = graph.blast_radius(["api_key:AKIAEXAMPLELEAKED01"]).by_kind()
    assert blast[NodeKind.endpoint] == ["endpoint:fraud-scorer-v3"]
    assert blast[NodeKind.service] == ["service:inference-gateway-ci"]
    team = graph.node("team:fraud-ml")
    assert team is not None and team.attributes["contact"] == "#fraud-ml"
    assert all(e.source == "assets/fraud-scoring.yaml" for e in out)


def test_the_readme_example_loads(tmp_path: Path) -> None:
    """The README's "The asset graph" example is a valid file."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    [example] = [b for b in blocks if b.startswith("# assets/serving.yaml")]
    write(tmp_path, "serving.yaml", example)
    [loaded] = load_declared(tmp_path, T0)
    ids = {n.id for n in loaded.nodes}
    assert {"endpoint:fraud-api", "model:fraud-detector", "team:fraud-ml"} <= ids
    assert ("endpoint:fraud-api", EdgeKind.serves, "alias:fraud-detector@champion") in {
        e.key for e in loaded.edges
    }


def test_a_pinned_version_can_be_served_and_a_single_reference_needs_no_list(
    tmp_path: Path,
) -> None:
    """`serves: model/3` is a version, `serves: model@alias` an alias; a lone string is a list
    of one."""
    write(tmp_path, "teams.yaml", TEAMS)
    write(
        tmp_path,
        "e.yaml",
        """\
        endpoints:
          - id: pinned
            serves: fraud-detector/3
            uses: AKIA1
          - id: floating
            serves: [fraud-detector@champion, a/b@shadow]
        """,
    )
    edges = {e.key for d in load_declared(tmp_path, T0) for e in d.edges}
    assert edges == {
        ("endpoint:pinned", EdgeKind.serves, "model_version:fraud-detector/3"),
        ("endpoint:pinned", EdgeKind.uses, "api_key:AKIA1"),
        ("endpoint:floating", EdgeKind.serves, "alias:fraud-detector@champion"),
        ("endpoint:floating", EdgeKind.serves, "alias:a%2Fb@shadow"),
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("endpoints:\n  - id: x\n    servez: m@a\n", "x.yaml:3: endpoints.0.servez: Extra inputs"),
        (
            "endpoints:\n  - id: x\n    serves: [m@a, champion]\n",
            "x.yaml:3: endpoints.0.serves.1: ",
        ),
        ("models:\n  - name: m\n    tier: critcal\n", "x.yaml:3: models.0.tier: Input should be"),
        ("api_keys:\n  - id: 'has space'\n", "x.yaml:2: api_keys.0.id: String should match"),
        ("images:\n  - id: 'x'\n    tags: {'bad key': v}\n", "x.yaml:3: images.0.tags.bad key"),
        ("services:\n  - {id: s, owner: nobody}\n", "x.yaml:2: services.0.owner: no team 'nobody'"),
        ("datasets:\n  - name: d\n", "x.yaml:2: datasets.0.digest: Field required"),
        ("endpoint:\n  - id: x\n", "x.yaml:1: endpoint: Extra inputs are not permitted"),
        ("- id: x\n", "x.yaml:1: an asset file holds one mapping"),
        ("endpoints: [\n", "x.yaml:2: <document>: invalid YAML"),
        ('models:\n  - name: "a\\x1b[31m"\n', "x.yaml:2: models.0.name: String should match"),
    ],
)
def test_problems_are_reported_with_file_line_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    """Each mistake names the file, the line and the dotted field."""
    (tmp_path / "x.yaml").write_text(text)
    messages = errors_of(tmp_path)
    assert any(m.startswith(str(tmp_path / expected.split(":", 1)[0])) for m in messages)
    assert any(expected.split(":", 1)[1] in m for m in messages), messages


def test_every_problem_of_every_file_is_reported_at_once(tmp_path: Path) -> None:
    """Two bad files, three problems: one error with all of them. Checks across files (owners,
    duplicates) wait until every file is valid: a team in a broken file is not yet known."""
    write(tmp_path, "a.yaml", "endpoints:\n  - id: x\n    tier: urgent\n    colour: red\n")
    write(tmp_path, "b.yaml", "services:\n  - id: s\n    colour: blue\n    owner: ghosts\n")
    messages = errors_of(tmp_path)
    assert [m.rsplit("/", 1)[1].split(": ")[0] for m in sorted(messages)] == [
        "a.yaml:3",
        "a.yaml:4",
        "b.yaml:3",
    ]
    (tmp_path / "a.yaml").write_text("teams: [{id: ghost}]\n")
    (tmp_path / "b.yaml").write_text("services:\n  - id: s\n    owner: ghosts\n")
    [message] = errors_of(tmp_path)
    assert message.endswith(
        "b.yaml:3: services.0.owner: no team 'ghosts' is declared under `teams` (declared: ghost)"
    )


def test_an_asset_declared_twice_is_an_error_naming_both_places(tmp_path: Path) -> None:
    """The same endpoint in two files (or twice in one) is ambiguous: which tier is right?"""
    write(tmp_path, "a.yaml", "endpoints:\n  - id: fraud-api\n    tier: low\n")
    write(tmp_path, "b.yaml", "api_keys:\n  - id: k\nendpoints:\n  - id: fraud-api\n")
    [message] = errors_of(tmp_path)
    assert message == (
        f"{tmp_path / 'b.yaml'}:4: endpoints.0.id: endpoint:fraud-api is already declared at "
        f"{tmp_path / 'a.yaml'}:2"
    )


def test_oversized_files_are_refused_before_parsing(tmp_path: Path) -> None:
    """A file over the limit is never handed to the YAML parser."""
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * MAX_FILE_BYTES + "\n")
    [message] = errors_of(tmp_path)
    assert message.startswith(f"{path}:1: file too large")


def test_lists_are_bounded(tmp_path: Path) -> None:
    """An entry with thousands of references is refused, not loaded."""
    refs = ", ".join(f"k{i}" for i in range(101))
    write(tmp_path, "x.yaml", f"services:\n  - id: s\n    uses: [{refs}]\n")
    [message] = errors_of(tmp_path)
    assert "services.0.uses: Value should have at most 100 items" in message


def test_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    """Like rules and playbooks: the loader names what it did not find."""
    assert errors_of(tmp_path / "nope") == [f"{tmp_path / 'nope'}: asset files directory not found"]
