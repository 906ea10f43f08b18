"""A regulator-facing incident report, as JSON and as Markdown (pure).

`incident_report` assembles, from what responder recorded:

* who reports about which AI system (the `reporting` settings);
* what happened and when (the incident, its first and last event, when responder knew);
* the causal link as recorded: the rule that correlated which events, on which assets, and the
  analysts' assessment (their comments);
* the affected assets (from the newest evidence bundle, else from the events);
* the corrective measures taken: the playbook steps that ran, with their outcome;
* the timeline: events and audit records, in time order;
* the evidence: each bundle's manifest hash and whether it verifies now;
* for a `privacy_breach` incident, the personal data breach details GDPR Art. 33(3) asks for:
  categories and approximate numbers of data subjects and records (from the events'
  `attributes.data_categories`, `attributes.records`, `attributes.data_subjects`), the DPO
  contact, likely consequences (`attributes.likely_consequences`) and the measures taken.

`markdown` renders the JSON; every recorded string is escaped, since events and comments come
from outside (a title must not turn into a link or HTML in someone's Markdown viewer).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from responder import __version__
from responder.evidence.collect import IncidentRecord

SERIOUS_INCIDENT = "serious_incident"
PERSONAL_DATA_BREACH = "personal_data_breach"
BREACH_KINDS = frozenset({"privacy_breach"})
MEASURE_STATUSES = ("completed", "undone", "undo_failed", "failed", "denied", "planned")
_NOT_A_MEASURE = frozenset({"approval.request"})


def _models(assets: Mapping[str, Any]) -> list[str]:
    return [str(m.get("name")) for m in assets.get("models") or []]


def corrective_measures(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The steps playbooks took (or tried, or were stopped from taking), in run order."""
    measures = []
    for run in runs:
        for step in run.get("steps") or []:
            if step.get("action") in _NOT_A_MEASURE or step.get("status") not in MEASURE_STATUSES:
                continue
            measures.append(
                {
                    "playbook": run.get("playbook_id"),
                    "run": run.get("id"),
                    "mode": run.get("mode"),
                    "step": step.get("step_id"),
                    "action": step.get("action"),
                    "status": step.get("status"),
                    "at": step.get("finished_at") or step.get("started_at"),
                    "decided_by": step.get("decided_by"),
                    "output": step.get("output"),
                    "undo": step.get("undo_output"),
                    "error": step.get("error"),
                }
            )
    return measures


def timeline(record: IncidentRecord) -> list[dict[str, Any]]:
    """Events (by event time) and audit records (by the time they were recorded)."""
    items = [
        {
            "at": str(e.get("time")),
            "what": "event",
            "detail": f"{e.get('type')}: {e.get('title')}",
            "by": str(e.get("source")),
        }
        for e in record.events
    ]
    for a in record.audit:
        data = a.get("data") or {}
        detail = str(a["action"])
        if "step" in data:
            detail += f" {data['step']} ({data.get('action', '')})".rstrip(" ()")
        items.append({"at": str(a["at"]), "what": "audit", "detail": detail, "by": str(a["actor"])})
    return sorted(items, key=lambda i: datetime.fromisoformat(i["at"].replace("Z", "+00:00")))


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, str | int | float)]
    return []


def breach_details(events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Categories and approximate numbers of people and records, from the events' attributes.

    Numbers are sums over the events that give one: approximate, as GDPR Art. 33(3)(a) allows,
    and an upper bound when several events report the same exposure."""
    categories: list[str] = []
    consequences: list[str] = []
    totals = {"records": 0, "data_subjects": 0}
    reporting = Counter[str]()
    for event in events:
        attributes = event.get("attributes") or {}
        if not isinstance(attributes, Mapping):
            continue
        for c in _strings(attributes.get("data_categories")):
            if c not in categories:
                categories.append(c)
        for c in _strings(attributes.get("likely_consequences")):
            if c not in consequences:
                consequences.append(c)
        for name in totals:
            n = _count(attributes.get(name))
            if n is not None:
                totals[name] += n
                reporting[name] += 1

    def number(name: str) -> dict[str, Any]:
        given = reporting[name]
        return {
            "approximate": totals[name] if given else None,
            "method": f"sum over the {given} events that report it" if given else "not reported",
        }

    return {
        "data_categories": categories,
        "records": number("records"),
        "data_subjects": number("data_subjects"),
        "likely_consequences": consequences or ["to be assessed"],
    }


def incident_report(
    record: IncidentRecord,
    *,
    reporting_settings: Mapping[str, Any],
    assets: Mapping[str, Any],
    evidence: Sequence[Mapping[str, Any]],
    reporting: Mapping[str, Any] | None,
    generated_at: datetime,
) -> dict[str, Any]:
    """The report (JSON-ready). `evidence`: each bundle with `ok` and `problems` from
    verifying it now; `reporting`: the incident's category and deadlines, if it has one."""
    inc = record.incident
    breach = inc["kind"] in BREACH_KINDS
    types = Counter(str(e.get("type")) for e in record.events)
    measures = corrective_measures(record.runs)
    settings = reporting_settings
    count, kept = inc.get("event_count"), len(record.events)
    # an incident keeps its first events as evidence (RESPONDER_WORKER__MAX_EVIDENCE): what is
    # computed from the events says so when it saw only part of them
    partial = isinstance(count, int) and kept < count
    kept_note = (
        f" The figures below are computed from the first {kept} events, those "
        f"kept as evidence, not from all {count}."
        if partial
        else ""
    )
    report: dict[str, Any] = {
        "report": PERSONAL_DATA_BREACH if breach else SERIOUS_INCIDENT,
        "reference": inc["id"],
        "generated_at": generated_at.isoformat(),
        "generated_by": f"responder {__version__}",
        "provider": {"name": settings.get("provider"), "contact": settings.get("provider_contact")},
        "system": {
            "name": settings.get("system"),
            "version": settings.get("system_version"),
            "registration": settings.get("system_registration"),
        },
        "reporting": dict(reporting) if reporting is not None else None,
        "incident": {
            k: inc.get(k)
            for k in (
                "title",
                "kind",
                "severity",
                "status",
                "rule",
                "group",
                "first_seen",
                "last_seen",
                "event_count",
                "assignee",
            )
        }
        | {"detected_at": inc.get("created_at")},
        "what_happened": (
            f"{inc['title']}: {inc.get('event_count')} events from {inc['first_seen']} to "
            f"{inc['last_seen']}; severity {inc['severity']}, status {inc['status']}." + kept_note
        ),
        "causal_link": {
            "rule": inc["rule"],
            "correlated_events": dict(sorted(types.items())),
            "events_kept": kept,  # as evidence; `incident.event_count`: all
            "group": inc["group"],
            "affected_assets": _models(assets),
            "analyst_assessment": [
                {"at": c.get("at"), "by": c.get("by"), "text": c.get("text")}
                for c in inc.get("comments") or []
            ],
        },
        "affected_assets": dict(assets),
        "corrective_measures": measures,
        "timeline": timeline(record),
        "evidence": [dict(e) for e in evidence],
    }
    if breach:
        details = breach_details(record.events)
        if partial:
            for figure in ("records", "data_subjects"):
                details[figure]["method"] += (
                    f" (among the first {kept} of {count} events, those kept as evidence)"
                )
        report["personal_data_breach"] = {
            **details,
            "dpo_contact": settings.get("dpo_contact"),
            "measures_taken": [m for m in measures if m["status"] == "completed"],
        }
    return report


# --- Markdown -----------------------------------------------------------------------------------

_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|<>~])")


def md(value: Any) -> str:
    """One line of recorded text, safe as Markdown: specials escaped, line breaks flattened."""
    text = "-" if value is None or value == "" else str(value)
    return _SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _row(*cells: Any) -> str:
    return "| " + " | ".join(md(c) for c in cells) + " |"


def markdown(report: Mapping[str, Any]) -> str:
    """The report as a Markdown document."""
    inc = report["incident"]
    breach = report["report"] == PERSONAL_DATA_BREACH
    heading = "Personal data breach notification" if breach else "Serious incident report"
    lines = [
        f"# {heading}: {md(inc['title'])}",
        "",
        f"- **Reference:** {md(report['reference'])}",
        f"- **Generated:** {md(report['generated_at'])} by {md(report['generated_by'])}",
        f"- **Provider:** {md(report['provider']['name'])} (contact: {md(report['provider']['contact'])})",
        f"- **AI system:** {md(report['system']['name'])} version {md(report['system']['version'])}, "
        f"registration {md(report['system']['registration'])}",
    ]
    reporting = report.get("reporting")
    if reporting:
        lines.append(
            f"- **Reportable:** {md(reporting.get('category'))} since {md(reporting.get('since'))}"
        )
        for d in reporting.get("deadlines") or []:
            lines.append(f"  - {md(d.get('name'))}: due {md(d.get('due'))} ({md(d.get('source'))})")
    lines += [
        "",
        "## What happened",
        "",
        md(report["what_happened"]),
        "",
        f"- **Kind:** {md(inc['kind'])}; **severity:** {md(inc['severity'])}; **status:** {md(inc['status'])}",
        f"- **First event:** {md(inc['first_seen'])}; **last event:** {md(inc['last_seen'])}; "
        f"**detected:** {md(inc['detected_at'])}",
        "",
        "## Causal link",
        "",
    ]
    link = report["causal_link"]
    events = ", ".join(f"{n} {md(t)}" for t, n in link["correlated_events"].items())
    lines.append(f"Rule {md(link['rule'])} correlated {events or 'no events'}.")
    lines.append(f"Affected assets: {', '.join(md(a) for a in link['affected_assets']) or '-'}.")
    for c in link["analyst_assessment"]:
        lines.append(f"- {md(c['at'])} {md(c['by'])}: {md(c['text'])}")
    if breach:
        details = report["personal_data_breach"]
        lines += [
            "",
            "## Personal data breach (GDPR Art. 33(3))",
            "",
            f"- **Categories of data:** {', '.join(md(c) for c in details['data_categories']) or '-'}",
            f"- **Data subjects (approximate):** {md(details['data_subjects']['approximate'])} "
            f"({md(details['data_subjects']['method'])})",
            f"- **Records (approximate):** {md(details['records']['approximate'])} "
            f"({md(details['records']['method'])})",
            f"- **Likely consequences:** {'; '.join(md(c) for c in details['likely_consequences'])}",
            f"- **Data protection officer:** {md(details['dpo_contact'])}",
        ]
    lines += ["", "## Affected assets", ""]
    models = report["affected_assets"].get("models") or []
    lines.append(f"Source: {md(report['affected_assets'].get('source'))}.")
    for m in models:
        aliases = ", ".join(f"{md(a)}→{md(v)}" for a, v in (m.get("aliases") or {}).items())
        lines.append(
            f"- model {md(m.get('name'))}: implicated versions "
            f"{', '.join(md(v) for v in m.get('implicated_versions') or []) or '-'}"
            + (f"; aliases {aliases}" if aliases else "")
        )
    lines += [
        "",
        "## Corrective measures",
        "",
        _row("at", "playbook", "step", "action", "status", "decided by"),
        "|---|---|---|---|---|---|",
    ]
    lines += [
        _row(m["at"], m["playbook"], m["step"], m["action"], m["status"], m["decided_by"])
        for m in report["corrective_measures"]
    ]
    lines += ["", "## Timeline", "", _row("at", "what", "detail", "by"), "|---|---|---|---|"]
    lines += [_row(t["at"], t["what"], t["detail"], t["by"]) for t in report["timeline"]]
    lines += ["", "## Evidence", ""]
    if not report["evidence"]:
        lines.append("No evidence bundle recorded.")
    for e in report["evidence"]:
        verdict = (
            "verifies" if e.get("ok") else "DOES NOT VERIFY: " + "; ".join(e.get("problems") or [])
        )
        lines.append(
            f"- bundle {md(e.get('bundle'))}: manifest sha256 `{md(e.get('manifest_sha256'))}` "
            f"(audit record {md(e.get('seq'))}), {md(verdict)}"
        )
    return "\n".join(lines) + "\n"
