"""An incident as an OCSF Incident Finding (class 2005, OCSF 1.7.0), pure.

Built with, and so validated by, `pydantic-ocsf` (`ocsf.v1_7_0.events.IncidentFinding`):

* `finding_info_list`: the incident's evidence, one finding per event (uid `source:id`, title,
  type, time, source), each naming the correlation rule as its analytic;
* `severity_id`, `status_id`, `verdict_id` (a false positive), `activity_id` (create, update,
  close) from the incident; times in epoch milliseconds;
* `enrichments`: each evidence bundle with its manifest hash (the audit chain holds the same);
* `observables`: the incident's group values (the resource ids it is about);
* `unmapped.responder`: what OCSF has no field for (rule, kind, group, playbook runs, the
  reporting category and its deadlines).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ocsf.v1_7_0.events import IncidentFinding
from ocsf.v1_7_0.objects import (
    Analytic,
    Enrichment,
    FindingInfo,
    KeyValueObject,
    Metadata,
    Object,
    Observable,
    Product,
    User,
)

from responder import __version__
from responder.evidence.collect import IncidentRecord

OCSF_VERSION = "1.7.0"
CATEGORY_FINDINGS = 2
CLASS_INCIDENT_FINDING = 2005
SEVERITY_ID = {"info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
STATUS_ID = {"open": 1, "acknowledged": 2, "resolved": 4, "false_positive": 5}  # New .. Closed
IMPACT_ID = {"info": 1, "low": 1, "medium": 2, "high": 3, "critical": 4}
ACTIVITY_CREATE, ACTIVITY_UPDATE, ACTIVITY_CLOSE = 1, 2, 3
VERDICT_FALSE_POSITIVE = 1
OBSERVABLE_RESOURCE_UID, OBSERVABLE_OTHER = 10, 99


def epoch_ms(value: str | datetime) -> int:
    """RFC 3339 (or a datetime; naive means UTC, as SQLite returns it) as epoch milliseconds."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _finding(event: Mapping[str, Any], analytic: Analytic) -> FindingInfo:
    at = epoch_ms(str(event["time"]))
    return FindingInfo(
        uid=f"{event['source']}:{event['id']}",
        title=str(event.get("title", "")),
        types=[str(event.get("type", ""))],
        created_time=at,
        first_seen_time=at,
        last_seen_time=at,
        data_sources=[str(event["source"])],
        analytic=analytic,
        tags=[KeyValueObject(name="severity", value=str(event.get("severity")))],
    )


def _observables(group: Mapping[str, Any]) -> list[Observable]:
    return [
        Observable(
            name=str(path),
            type_id=OBSERVABLE_RESOURCE_UID if path == "resource.id" else OBSERVABLE_OTHER,
            value=str(value),
        )
        for path, value in group.items()
    ]


def _enrichments(snapshots: Sequence[Mapping[str, Any]]) -> list[Enrichment]:
    return [
        Enrichment(
            name="evidence_bundle",
            value=str(s["manifest_sha256"]),
            desc="sha256 of the evidence bundle's manifest, as recorded in the audit chain",
            provider="responder",
            created_time=epoch_ms(str(s["at"])),
            data={
                "bundle": s.get("bundle"),
                "location": s.get("location"),
                "audit_seq": s.get("seq"),
            },
        )
        for s in snapshots
    ]


def incident_finding(
    record: IncidentRecord,
    *,
    snapshots: Sequence[Mapping[str, Any]] = (),
    reporting: Mapping[str, Any] | None = None,
    vendor: str | None = None,
) -> IncidentFinding:
    """The OCSF Incident Finding of one incident (raises pydantic's ValidationError if the
    incident cannot be one, which a stored incident always can)."""
    inc = record.incident
    status = str(inc["status"])
    if status in ("resolved", "false_positive"):
        activity = ACTIVITY_CLOSE
    else:
        activity = ACTIVITY_UPDATE if int(inc.get("version", 1)) > 1 else ACTIVITY_CREATE
    analytic = Analytic(name=str(inc["rule"]), uid=str(inc["rule"]), type_id=1)  # Rule
    findings = [_finding(e, analytic) for e in record.events] or [
        FindingInfo(uid=str(inc["id"]), title=str(inc["title"]), analytic=analytic)
    ]
    runs = [
        {"id": r["id"], "playbook": r["playbook_id"], "mode": r["mode"], "status": r["status"]}
        for r in record.runs
    ]
    responder: dict[str, Any] = {
        "rule": inc["rule"],
        "kind": inc["kind"],
        "group": inc["group"],
        "version": inc.get("version"),
        "runs": runs,
    }
    if reporting is not None:
        responder["reporting"] = dict(reporting)
    return IncidentFinding(
        activity_id=activity,
        category_uid=CATEGORY_FINDINGS,
        class_uid=CLASS_INCIDENT_FINDING,
        severity_id=SEVERITY_ID.get(str(inc["severity"]), 0),
        status_id=STATUS_ID.get(status, 99),
        status_detail=status,
        time=epoch_ms(str(inc["updated_at"])),
        start_time=epoch_ms(str(inc["first_seen"])),
        end_time=epoch_ms(str(inc["last_seen"])),
        desc=str(inc["title"]),
        message=str(inc["title"]),
        count=int(inc.get("event_count") or len(record.events)),
        impact_id=IMPACT_ID.get(str(inc["severity"]), 0),
        verdict_id=VERDICT_FALSE_POSITIVE if status == "false_positive" else None,
        is_suspected_breach=True if inc["kind"] == "privacy_breach" else None,
        assignee=User(name=str(inc["assignee"])) if inc.get("assignee") else None,
        finding_info_list=findings,
        observables=_observables(inc.get("group") or {}) or None,
        enrichments=_enrichments(snapshots) or None,
        metadata=Metadata(
            version=OCSF_VERSION,
            uid=str(inc["id"]),
            correlation_uid=str(inc["id"]),
            logged_time=epoch_ms(str(inc["created_at"])),
            modified_time=epoch_ms(str(inc["updated_at"])),
            product=Product(
                name="responder", vendor_name=vendor or "responder", version=__version__
            ),
        ),
        unmapped=Object.model_validate({"responder": responder}),
    )


def finding_json(finding: IncidentFinding) -> dict[str, Any]:
    """The finding as OCSF JSON (enum labels filled in, unset fields left out)."""
    data: dict[str, Any] = finding.model_dump(mode="json", exclude_none=True)
    return data
