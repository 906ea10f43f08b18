"""Evidence bundles on plain values: the manifest, its checks, the local store, what is kept."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from responder.evidence import bundle as B
from responder.evidence.assets import EventAssets, ModelRef, describe_models
from responder.evidence.settings_view import public_settings
from responder.evidence.store import BundleExists, BundleMissing, LocalEvidenceStore
from responder.settings import Settings
from tests.support.fakes.mlflow import FakeRegistry

AT = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
MEMBERS: dict[str, Any] = {
    "incident": {"id": "inc-1", "title": "Integrity of model fraud at risk"},
    "events": [{"id": "e1", "resource": {"kind": "model", "name": "fraud", "version": "3"}}],
    "assets": {"models": [{"name": "fraud", "versions": [{"artifacts": [{"sha256": "ab"}]}]}]},
}


def make(members: dict[str, Any] | None = None) -> B.Bundle:
    return B.build(
        B.bundle_id("inc-1", AT, "t0k3n"),
        MEMBERS if members is None else members,
        header={"incident_id": "inc-1", "created_at": AT.isoformat(), "created_by": "test"},
    )


def problems(files: dict[str, bytes], recorded: str | None) -> list[str]:
    return B.check(
        files, bundle="inc-1/20261125T093000Z-t0k3n", incident_id="inc-1", manifest_sha256=recorded
    )


# --- the bundle ---------------------------------------------------------------------------------


def test_a_fresh_bundle_verifies_against_its_manifest_hash() -> None:
    """Every member is listed with its sha256 and the manifest hash is the hash of its bytes."""
    made = make()
    assert made.id == "inc-1/20261125T093000Z-t0k3n"
    assert sorted(made.files) == ["assets.json", "events.json", "incident.json", "manifest.json"]
    assert made.manifest_sha256 == B.sha256_hex(made.files["manifest.json"])
    listing = {m["name"]: m["sha256"] for m in made.manifest["members"]}
    assert listing["events.json"] == B.sha256_hex(made.files["events.json"])
    assert made.manifest["format"] == "responder-evidence/1"
    assert problems(made.files, made.manifest_sha256) == []


def test_members_are_canonical_json() -> None:
    """The same values give the same bytes whatever their key order: the hash is stable."""
    one = make({"incident": {"b": 1, "a": "é"}})
    two = make({"incident": {"a": "é", "b": 1}})
    assert one.files["incident.json"] == two.files["incident.json"] == '{"a":"é","b":1}'.encode()
    assert one.manifest_sha256 == two.manifest_sha256


def test_an_edited_artifact_hash_no_longer_matches_the_manifest() -> None:
    """Changing a stored artifact's sha256 in assets.json breaks that member's hash."""
    made = make()
    files = dict(made.files)
    files["assets.json"] = files["assets.json"].replace(b'"ab"', b'"cd"')
    assert problems(files, made.manifest_sha256) == [
        "assets.json does not match its sha256 in manifest.json"
    ]


def test_a_manifest_rewritten_to_match_no_longer_matches_the_chain() -> None:
    """Editing a member and its manifest entry changes the manifest hash the chain recorded."""
    made = make()
    forged = make({**MEMBERS, "assets": {"models": []}})
    [problem] = problems(forged.files, made.manifest_sha256)
    assert problem.startswith("manifest.json has sha256 ")
    assert problem.endswith(f"the audit chain recorded {made.manifest_sha256}")


def test_missing_and_unlisted_members_are_reported() -> None:
    """A member taken away or a file slipped in is named."""
    made = make()
    files = {k: v for k, v in made.files.items() if k != "events.json"}
    files["extra.json"] = b"{}"
    assert problems(files, made.manifest_sha256) == [
        "events.json is missing",
        "extra.json is not listed in manifest.json",
    ]
    assert problems({}, None) == ["manifest.json is missing"]


def test_a_manifest_of_another_incident_is_refused() -> None:
    """A bundle copied from another incident does not pass for this one's."""
    made = make()
    found = B.check(made.files, bundle=made.id, incident_id="inc-2", manifest_sha256=None)
    assert found == ["manifest.json is of incident 'inc-1'"]


@pytest.mark.parametrize("incident", ["../etc", "a/b", "", ".hidden", "x" * 200])
def test_bundle_ids_are_safe_path_segments(incident: str) -> None:
    """An incident id that could leave the store's directory is not a bundle id."""
    with pytest.raises(B.BadBundleId):
        B.bundle_id(incident, AT, "tok")


# --- the local store ----------------------------------------------------------------------------


def test_the_local_store_writes_read_only_files_once(tmp_path: Path) -> None:
    """Files are 0o444 in a 0o555 directory, read back as written; a second put is refused."""
    store = LocalEvidenceStore(tmp_path / "evidence")
    made = make()
    stored = store.put(made.id, made.files)
    where = tmp_path / "evidence" / "inc-1" / "20261125T093000Z-t0k3n"
    assert stored.location == str(where)
    assert stat.S_IMODE(os.stat(where / "manifest.json").st_mode) == 0o444
    assert stat.S_IMODE(os.stat(where).st_mode) == 0o555
    assert store.get(made.id) == made.files
    with pytest.raises(BundleExists):
        store.put(made.id, made.files)
    assert store.get(made.id) == made.files


def test_a_missing_bundle_is_reported(tmp_path: Path) -> None:
    """Reading a bundle that is not there raises BundleMissing."""
    with pytest.raises(BundleMissing):
        LocalEvidenceStore(tmp_path).get("inc-1/nothing")


def test_the_local_store_refuses_file_names_outside_the_format(tmp_path: Path) -> None:
    """Only member names of the format are written (no paths, no dotfiles)."""
    with pytest.raises(ValueError):
        LocalEvidenceStore(tmp_path).put("inc-1/x", {"../escape.json": b"{}"})


# --- what a bundle keeps ------------------------------------------------------------------------


def test_settings_in_evidence_leave_secrets_out() -> None:
    """SecretStr fields are absent (not masked) and URL credentials are masked."""
    settings = Settings.model_validate(
        {
            "slack": {"bot_token": "xoxb-secret", "channel": "#sec"},
            "aws": {"secret_access_key": "aws-secret", "region": "eu-west-1"},
            "database": {"url": "postgresql+psycopg://responder:hunter2@db:5432/responder"},
            "playbooks": {"vars": {"ticket_url": "https://t.example", "api_token": "tok"}},
        }
    )
    kept = public_settings(settings)
    text = json.dumps(kept)
    for secret in ("xoxb-secret", "aws-secret", "hunter2", '"tok"'):
        assert secret not in text
    assert "bot_token" not in kept["slack"] and "secret_access_key" not in kept["aws"]
    assert kept["slack"]["channel"] == "#sec"
    assert kept["database"]["url"] == "postgresql+psycopg://***@db:5432/responder"
    assert kept["playbooks"]["vars"] == {"ticket_url": "https://t.example", "api_token": "***"}
    assert kept["playbooks"]["kill_switch"] is False
    assert isinstance(settings.slack.bot_token, SecretStr)


def test_affected_models_come_from_the_events() -> None:
    """Model resources of the events name the models and the implicated versions."""
    events: list[dict[str, Any]] = [
        {"resource": {"kind": "model", "id": "m-1", "name": "fraud", "version": 3}},
        {"resource": {"kind": "model", "id": "m-1", "name": "fraud", "version": "3"}},
        {"resource": {"kind": "model", "id": "ranker"}},
        {"resource": {"kind": "dataset", "id": "ds-1", "name": "transactions"}},
        {"resource": "not a mapping"},
    ]
    assert EventAssets().affected_models({}, events) == [
        ModelRef("fraud", ("3",)),
        ModelRef("ranker", ()),
    ]


async def test_models_are_described_with_artifact_hashes() -> None:
    """Aliases, tags and versions; artifacts hashed for implicated and aliased versions."""
    registry = FakeRegistry()
    model = registry.add_model(
        "fraud", versions=3, tags={"1": {"scan": "clean"}}, aliases={"champion": "2"}
    )
    model.files = {
        "3": {"model.pkl": b"bad weights"},
        "2": {"model.pkl": b"ok", "big.bin": b"x" * 12},
    }
    described = await describe_models(
        registry, [ModelRef("fraud", ("3",))], source="events", max_bytes=11, max_files=10
    )
    [fraud] = described["models"]
    assert fraud["aliases"] == {"champion": "2"}
    versions = {v["version"]: v for v in fraud["versions"]}
    assert versions["1"]["tags"] == {"scan": "clean"} and "artifacts" not in versions["1"]
    assert versions["2"]["aliases"] == ["champion"] and not versions["2"]["implicated"]
    assert versions["3"]["implicated"]
    [bad] = versions["3"]["artifacts"]
    assert bad == {
        "path": "model.pkl",
        "size": 11,
        "sha256": B.sha256_hex(b"bad weights"),
        "note": None,
    }
    big = next(a for a in versions["2"]["artifacts"] if a["path"] == "big.bin")
    assert big["sha256"] is None and big["note"] == "larger than 11 bytes"


async def test_without_a_model_registry_the_bundle_says_so() -> None:
    """MLflow not configured: the models are listed and the registry recorded as absent."""
    described = await describe_models(
        None, [ModelRef("fraud", ("3",))], source="events", max_bytes=1, max_files=1
    )
    assert described == {
        "source": "events",
        "model_registry": "not configured",
        "models": [{"name": "fraud", "implicated_versions": ["3"]}],
    }


async def test_a_failing_registry_is_recorded_not_fatal() -> None:
    """An unknown model is described by its error; the snapshot goes on."""
    described = await describe_models(
        FakeRegistry(), [ModelRef("gone")], source="events", max_bytes=1, max_files=1
    )
    [gone] = described["models"]
    assert "not found" in gone["error"]
