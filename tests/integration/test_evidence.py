"""Evidence before containment, on SQLite and PostgreSQL: the runner's guard, snapshots of a real
MLflow registry, `responder evidence verify`, and the S3 store against a moto server."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from mlflow.entities import Dataset, DatasetInput, InputTag
from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from responder.actions.mlflow import MlflowRegistry
from responder.cli import app
from responder.commands import Decision
from responder.evidence import bundle as B
from responder.evidence.store import BundleExists, S3EvidenceStore
from responder.evidence.verify import verify_incident
from tests.support.aws_server import CREDENTIALS, REGION, MotoServer
from tests.support.fakes.mlflow import FakeRegistry
from tests.support.mlflow_registry import RegistryFixture, create_registry
from tests.support.runner_kit import NOTHING, Kit, change, event

pytestmark = pytest.mark.integration

ROLLBACK_ONLY = """
id: rollback-only
title: Roll back without keeping evidence first
on: {kind: model_integrity}
steps:
  - id: rollback
    action: mlflow.rollback_model
    with: {name: fraud-detector, strategy: previous}
"""

SNAPSHOT_THEN_ROLLBACK = """
id: snapshot-then-rollback
title: Keep the evidence, then roll back
on: {kind: model_integrity}
steps:
  - id: evidence
    action: evidence.snapshot
    with: {reason: before the rollback}
  - id: rollback
    action: mlflow.rollback_model
    with: {name: fraud-detector, alias: champion, strategy: last_known_good, bad_versions: ["3"]}
"""


def model_events() -> list[dict[str, Any]]:
    resource = {"kind": "model", "id": "m-fraud", "name": "fraud-detector", "version": "3"}
    return [event("unsafe-1", 1, type="model.unsafe_file", resource=resource)]


def model_change() -> Any:
    return change(kind="model_integrity", events=model_events())


def quiet_kit(db: Engine, tmp_path: Path, **fields: Any) -> Kit:
    """A kit whose playbooks start no run: snapshots are taken by hand."""
    kit = Kit(db=db, directory=tmp_path / "playbooks", **fields)
    kit.playbook("nothing", NOTHING)
    return kit


def audit_actions(kit: Kit) -> list[str]:
    return [f"{r.action}:{r.data.get('step', '')}" for r in kit.audit()]


async def test_the_rollback_is_refused_until_a_snapshot_exists(db: Engine, tmp_path: Path) -> None:
    """A rollback playbook without a snapshot blocks; approval alone does not release it."""
    registry = FakeRegistry()
    registry.add_model("fraud-detector", versions=3, aliases={"champion": "3"})
    kit = Kit(db=db, directory=tmp_path / "playbooks", models=registry)
    kit.playbook("rollback-only", ROLLBACK_ONLY)
    [rid] = kit.apply(model_change())

    await kit.drive()
    run, step = kit.run(rid), kit.steps(rid)["rollback"]
    assert run.status == "blocked_by_guard"
    assert step.error == "guard: no evidence snapshot of the incident yet (require_evidence)"
    assert registry.calls["set_alias"] == 0

    kit.command(Decision(run_id=rid, approved=True, by="alice"))
    await kit.drive()
    assert kit.run(rid).status == "blocked_by_guard"  # an approval is not a snapshot
    assert kit.steps(rid)["rollback"].decision is None  # ... and it can be given again
    assert registry.models["fraud-detector"].aliases["champion"] == "3"

    taken = await kit.snapshotter().snapshot("inc-1", actor="analyst:alice")
    kit.command(Decision(run_id=rid, approved=True, by="alice"))
    await kit.drive()
    assert kit.run(rid).status == "completed"
    assert registry.models["fraud-detector"].aliases["champion"] == "2"
    actions = audit_actions(kit)
    assert actions.index("evidence.snapshot:") < actions.index("step.started:rollback")
    with Session(db) as session:
        [checked] = verify_incident(session, kit.evidence_store, "inc-1")  # type: ignore[arg-type]
    assert checked.ok and checked.manifest_sha256 == taken["manifest_sha256"]
    assert kit.chain_ok()


@pytest.fixture
def registry(tmp_path: Path) -> RegistryFixture:
    """fraud-detector v1 (clean) .. v3 (@champion); v3 was trained on a logged dataset."""
    reg = create_registry(tmp_path / "mlflow", versions=3, clean=(1,), champion=3)
    client = reg.client()
    experiment = client.create_experiment("training", artifact_location=str(reg.root / "runs"))
    run = client.create_run(experiment)
    dataset = Dataset(
        name="transactions",
        digest="9f2c1e",
        source_type="http",
        source='{"url": "https://data.example/transactions.parquet"}',
    )
    client.log_inputs(
        run.info.run_id,
        datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])],
    )
    v4 = client.create_model_version(
        reg.name, source=str(reg.root / "models" / reg.name / "v3"), run_id=run.info.run_id
    )
    client.set_registered_model_alias(reg.name, "champion", str(v4.version))
    return reg


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def invoke(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


def make_writable(path: Path) -> None:
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o644)


async def test_snapshot_step_keeps_the_model_as_it_was_then_rollback_and_verify(
    db: Engine, db_url: str, tmp_path: Path, registry: RegistryFixture
) -> None:
    """The snapshot runs first, records the model before the rollback, and verifies; editing
    an artifact hash in the stored bundle makes `responder evidence verify` fail."""
    kit = Kit(
        db=db,
        directory=tmp_path / "playbooks",
        models=MlflowRegistry(tracking_uri=registry.tracking_uri),
    )
    kit.playbook("snapshot-then-rollback", SNAPSHOT_THEN_ROLLBACK)
    resource = {"kind": "model", "id": "m", "name": registry.name, "version": "4"}
    [rid] = kit.apply(
        change(
            kind="model_integrity",
            events=[event("u1", 1, type="model.unsafe_file", resource=resource)],
        )
    )
    await kit.drive()
    assert kit.run(rid).status == "completed"
    assert registry.alias() == "1"  # rolled back to the last clean version
    output = kit.steps(rid)["evidence"].output

    files = kit.evidence_store.get(output["bundle"])  # type: ignore[union-attr]
    assets = json.loads(files["assets.json"])
    assert assets["source"] == "events" and assets["model_registry"] == "configured"
    [model] = assets["models"]
    assert model["aliases"] == {"champion": "4"}  # as it was before the rollback
    v4 = next(v for v in model["versions"] if v["version"] == "4")
    assert v4["implicated"] and v4["aliases"] == ["champion"]
    hashes = {a["path"]: a["sha256"] for a in v4["artifacts"]}
    assert hashes["MLmodel"] == sha256_of(
        registry.root / "models" / registry.name / "v3" / "MLmodel"
    )
    assert v4["datasets"] == [
        {
            "name": "transactions",
            "digest": "9f2c1e",
            "source_type": "http",
            "source": '{"url": "https://data.example/transactions.parquet"}',
            "context": "training",
        }
    ]
    runs = json.loads(files["runs.json"])
    assert [s["step_id"] for s in runs[0]["steps"]] == ["evidence"]  # the runs so far
    manifest = json.loads(files["manifest.json"])
    assert (
        manifest["created_by"] == f"playbook-run:{rid}"
        and manifest["reason"] == "before the rollback"
    )
    assert "bot_token" not in json.loads(files["settings.json"])["slack"]

    env = {"RESPONDER_DATABASE__URL": db_url, "RESPONDER_EVIDENCE__DIR": str(tmp_path / "evidence")}
    ok = invoke(env, "evidence", "verify", "inc-1")
    assert ok.exit_code == 0, ok.output
    assert f"OK: bundle {output['bundle']}" in ok.stdout
    shown = invoke(env, "evidence", "show", "inc-1", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["manifest"]["bundle"] == output["bundle"]

    stored = tmp_path / "evidence" / Path(output["bundle"]) / "assets.json"
    make_writable(stored)
    edited = stored.read_text().replace(hashes["MLmodel"], "0" * 64)
    stored.write_text(edited)
    broken = invoke(env, "evidence", "verify", "inc-1")
    assert broken.exit_code == 1
    assert "FAILED" in broken.stdout
    assert "assets.json does not match its sha256 in manifest.json" in broken.stdout

    # ... and a manifest rewritten to match the edit no longer matches the audit chain
    manifest_path = stored.parent / "manifest.json"
    make_writable(manifest_path)
    listing = json.loads(manifest_path.read_bytes())
    for member in listing["members"]:
        if member["name"] == "assets.json":
            member["sha256"] = hashlib.sha256(edited.encode()).hexdigest()
            member["size"] = len(edited.encode())
    manifest_path.write_bytes(B.canonical_json(listing))
    forged = invoke(env, "evidence", "verify", "inc-1")
    assert forged.exit_code == 1
    assert "manifest.json has sha256" in forged.stdout
    assert f"the audit chain recorded {output['manifest_sha256']}" in forged.stdout


async def test_a_retried_snapshot_step_returns_its_recorded_bundle(
    db: Engine, tmp_path: Path
) -> None:
    """The same idempotency key finds the snapshot it recorded; no second bundle."""
    kit = quiet_kit(db, tmp_path)
    kit.apply(model_change())
    snapper = kit.snapshotter()
    first = await snapper.snapshot("inc-1", actor="playbook-run:r", key="r:evidence")
    again = await snapper.snapshot("inc-1", actor="playbook-run:r", key="r:evidence")
    assert again == first
    assert [r.action for r in kit.audit()].count("evidence.snapshot") == 1
    other = await snapper.snapshot("inc-1", actor="analyst:bob")
    assert other["bundle"] != first["bundle"]


async def test_without_mlflow_the_bundle_records_it(db: Engine, tmp_path: Path) -> None:
    """MLflow not configured: the snapshot still happens and says so."""
    kit = quiet_kit(db, tmp_path)
    kit.models = None  # type: ignore[assignment]
    kit.apply(model_change())
    taken = await kit.snapshotter().snapshot("inc-1", actor="analyst:alice")
    files = kit.evidence_store.get(taken["bundle"])  # type: ignore[union-attr]
    assets = json.loads(files["assets.json"])
    assert assets["model_registry"] == "not configured"
    assert assets["models"] == [{"name": "fraud-detector", "implicated_versions": ["3"]}]


# --- the S3 store on moto -------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def s3(moto: MotoServer) -> Any:
    return boto3.client("s3", endpoint_url=moto.endpoint_url, region_name=REGION, **CREDENTIALS)


def bucket(moto: MotoServer, *, lock: bool = False, versioning: bool = False) -> str:
    name = f"evidence-{uuid.uuid4().hex[:12]}"
    client = s3(moto)
    client.create_bucket(Bucket=name, **({"ObjectLockEnabledForBucket": True} if lock else {}))
    if versioning:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def sample() -> B.Bundle:
    return B.build(
        "inc-9/20261125T093000Z-abcd",
        {"incident": {"id": "inc-9"}, "events": []},
        header={"incident_id": "inc-9"},
    )


def test_s3_store_puts_under_object_lock_when_the_bucket_has_it(moto: MotoServer) -> None:
    """Each object gets a COMPLIANCE retention; the bundle reads back; a second put is refused."""
    name = bucket(moto, lock=True)
    store = S3EvidenceStore(s3(moto), bucket=name, prefix="ev/", retention_days=30)
    made = sample()
    stored = store.put(made.id, made.files)
    assert stored.location == f"s3://{name}/ev/inc-9/20261125T093000Z-abcd/"
    assert stored.protection.startswith("object_lock COMPLIANCE until ")
    assert set(stored.versions) == set(made.files)
    head = s3(moto).head_object(Bucket=name, Key="ev/inc-9/20261125T093000Z-abcd/manifest.json")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert store.get(made.id) == made.files
    with pytest.raises(BundleExists):
        store.put(made.id, made.files)
    with pytest.raises(Exception, match="AccessDenied"):  # retention: not even a delete
        s3(moto).delete_object(
            Bucket=name,
            Key="ev/inc-9/20261125T093000Z-abcd/manifest.json",
            VersionId=stored.versions["manifest.json"],
        )


@pytest.mark.parametrize(("versioning", "protection"), [(True, "versioning"), (False, "none")])
def test_s3_store_without_object_lock(moto: MotoServer, versioning: bool, protection: str) -> None:
    """Without object lock the store relies on versioning, and says when there is none."""
    store = S3EvidenceStore(s3(moto), bucket=bucket(moto, versioning=versioning), prefix="")
    made = sample()
    stored = store.put(made.id, made.files)
    assert stored.protection == protection
    assert bool(stored.versions) is versioning
    assert (
        B.check(
            store.get(made.id),
            bundle=made.id,
            incident_id="inc-9",
            manifest_sha256=made.manifest_sha256,
        )
        == []
    )


async def test_a_snapshot_to_s3_verifies_and_an_overwrite_is_detected(
    db: Engine, tmp_path: Path, moto: MotoServer
) -> None:
    """A bundle in a versioned bucket verifies; an object replaced later fails verification."""
    name = bucket(moto, versioning=True)
    store = S3EvidenceStore(s3(moto), bucket=name, prefix="responder/")
    kit = quiet_kit(db, tmp_path, evidence_store=store)
    kit.apply(model_change())
    taken = await kit.snapshotter().snapshot("inc-1", actor="analyst:alice")
    with Session(db) as session:
        [checked] = verify_incident(session, store, "inc-1")
    assert checked.ok, checked.problems
    s3(moto).put_object(Bucket=name, Key=f"responder/{taken['bundle']}/events.json", Body=b"[]")
    with Session(db) as session:
        [checked] = verify_incident(session, store, "inc-1")
    assert checked.problems == ["events.json does not match its sha256 in manifest.json"]


def test_local_bundle_files_are_read_only(tmp_path: Path) -> None:
    """The local store's files cannot be written by their owner without a chmod first."""
    from responder.evidence.store import LocalEvidenceStore

    made = sample()
    LocalEvidenceStore(tmp_path).put(made.id, made.files)
    path = tmp_path / "inc-9" / "20261125T093000Z-abcd" / "events.json"
    assert not stat.S_IMODE(path.stat().st_mode) & 0o222
