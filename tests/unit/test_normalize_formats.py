"""Each converter on real (or upstream-shaped) reports: the events, severities, ids and secrets."""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from responder.events.normalize import Context, Rejected, convert
from responder.events.normalize.core import Skipped
from responder.events.normalize.garak import rate_severity
from responder.events.normalize.leaks import leak_severity
from responder.events.normalize.secret import fingerprint

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reports"
WHEN = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def outputs(fixture: str, fmt: str = "auto", **context: Any) -> list[Any]:
    with (FIXTURES / fixture).open("rb") as stream:
        return list(convert(stream, fmt, Context(**context)))


def events(fixture: str, fmt: str = "auto", **context: Any) -> list[dict[str, Any]]:
    found = outputs(fixture, fmt, **context)
    rejected = [o for o in found if isinstance(o, Rejected)]
    assert not rejected, rejected
    return [o for o in found if isinstance(o, dict)]


def by(items: list[dict[str, Any]], key: str, value: Any) -> dict[str, Any]:
    [found] = [e for e in items if e["attributes"].get(key) == value]
    return found


def ids(items: list[dict[str, Any]]) -> set[str]:
    return {e["id"] for e in items}


# --- vulnerability scanners --------------------------------------------------------------


def test_trivy_one_event_per_vulnerability_with_cvss_and_versions() -> None:
    """Trivy: every vulnerability of every result, severity by Trivy, the image as resource."""
    found = events("trivy/trivy.scan1.json", labels={"component": "model-serving"})
    assert Counter(e["severity"] for e in found) == {
        "critical": 2,
        "high": 1,
        "medium": 1,
        "low": 1,
    }
    torch = by(found, "package", "torch")
    assert torch["resource"] == {
        "kind": "image",
        "id": "registry.example.com/ml/fraud-scorer-serving:3.2.0",
        "name": "registry.example.com/ml/fraud-scorer-serving:3.2.0",
        "version": "sha256:9b1c3f0e4d2a6b8c7e5f3a1d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b",
    }
    attrs = torch["attributes"]
    assert (attrs["cve"], attrs["cvss"], attrs["installed_version"], attrs["fixed_version"]) == (
        "CVE-2025-32434",
        9.8,
        "2.5.1",
        "2.6.0",
    )
    assert attrs["class"] == "lang-pkgs" and attrs["target"] == "Python"
    assert torch["source"] == "trivy" and torch["type"] == "vulnerability.found"
    assert torch["time"] == "2026-11-25T08:45:12.482913Z"
    assert torch["labels"] == {"component": "model-serving"}


def test_trivy_ids_are_stable_across_scans_and_a_returning_finding_keeps_its_id() -> None:
    """The next scan (new time, new order) gives the same ids; a finding gone and back too."""
    first = events("trivy/trivy.scan1.json")
    second = events("trivy/trivy.scan2.json")
    third = events("trivy/trivy.scan3.json")
    assert ids(second) < ids(first)
    assert ids(first) - ids(second) == {by(first, "package", "apt")["id"]}
    assert ids(third) == ids(first)


def test_grype_reads_the_target_written_after_the_matches() -> None:
    """Grype: source and time come after the matches; severity by Grype, CVSS from related."""
    found = events("grype/grype.json")
    assert {e["resource"]["id"] for e in found} == {
        "registry.example.com/ml/fraud-scorer-serving:3.2.0"
    }
    assert Counter(e["severity"] for e in found) == {"critical": 2, "info": 1}
    xz = by(found, "package", "liblzma5")
    assert xz["attributes"]["cvss"] == 10 and xz["attributes"]["cve"] == "CVE-2024-3094"
    torch = by(found, "package", "torch")
    assert torch["attributes"]["cve"] == "CVE-2025-32434"
    assert torch["attributes"]["vulnerability_id"] == "GHSA-53q9-r3pm-6pq6"
    assert all(e["time"] == "2026-11-25T08:50:31.117361Z" for e in found)


def test_osv_scanner_one_event_per_group_with_score_severity() -> None:
    """OSV-Scanner: aliases grouped into one event; severity from max_severity; caller's time."""
    found = events("osv-scanner/osv-scanner.json", time=WHEN, asset="fraud-scorer")
    assert len(found) == 2
    torch = by(found, "package", "torch")
    assert torch["severity"] == "critical" and torch["attributes"]["cvss"] == 9.8
    assert torch["attributes"]["aliases"] == [
        "CVE-2025-32434",
        "GHSA-53q9-r3pm-6pq6",
        "PYSEC-2025-41",
    ]
    assert torch["resource"] == {
        "kind": "package",
        "id": "PyPI:torch",
        "name": "torch",
        "version": "2.5.1",
    }
    assert torch["attributes"]["fixed_version"] == "2.6.0"
    assert torch["attributes"]["time_source"] == "caller"


def test_osv_scanner_without_a_time_is_rejected() -> None:
    """The report has no time: without the caller's every finding is rejected, none dropped."""
    found = outputs("osv-scanner/osv-scanner.json")
    assert [type(o) for o in found] == [Rejected, Rejected]


def test_pip_audit_every_vulnerability_medium_skips_counted() -> None:
    """pip-audit gives no severity: medium; a skipped dependency is counted, not an event."""
    found = outputs("pip-audit/pip-audit.json", time=WHEN)
    made = [o for o in found if isinstance(o, dict)]
    assert [o.reason for o in found if isinstance(o, Skipped)] == [
        "dependency skipped by pip-audit: Dependency not found on PyPI and could not be audited: "
        "fraud-scorer (3.2.0)"
    ]
    assert {e["severity"] for e in made} == {"medium"}
    assert {e["attributes"]["cve"] for e in made} == {
        "CVE-2024-56201",
        "CVE-2024-56326",
        "CVE-2025-32434",
    }
    assert by(made, "vulnerability_id", "PYSEC-2025-41")["resource"]["id"] == "pypi:torch"


# --- code scanners -------------------------------------------------------------------------


def test_sarif_from_bandit_severity_rule_metadata_and_redacted_password() -> None:
    """SARIF (Bandit): issue_severity maps, rule metadata kept, the password never copied."""
    found = events("sarif/bandit.scan1.sarif", asset="ml-platform/fraud-scorer")
    assert {e["source"] for e in found} == {"bandit"}
    assert Counter(e["severity"] for e in found) == {"low": 3, "medium": 2, "high": 1}
    shell = by(found, "rule_id", "B602")
    assert shell["severity"] == "high" and shell["attributes"]["cwe"] == ["CWE-78"]
    assert shell["attributes"]["rule"]["name"] == "subprocess_popen_with_shell_equals_true"
    assert shell["resource"] == {"kind": "repo", "id": "ml-platform/fraud-scorer"}
    assert (
        shell["time"]
        == orjson.loads((FIXTURES / "sarif/bandit.scan1.sarif").read_bytes())["runs"][0][
            "invocations"
        ][0]["endTimeUtc"]
    )
    raw = b"".join(orjson.dumps(e) for e in found)
    assert b"hunter2hunter2" not in raw
    assert "hunt…(14)" in by(found, "rule_id", "B105")["title"]


def test_sarif_from_semgrep_level_severity_and_placeholder_fingerprints_ignored() -> None:
    """SARIF (Semgrep): error → high, warning → medium; `requires login` is no fingerprint."""
    found = events("sarif/semgrep.scan1.sarif", asset="repo", time=WHEN)
    assert {e["source"] for e in found} == {"semgrep-oss"}
    assert {e["attributes"]["rule_id"]: e["severity"] for e in found} == {
        "pickle-loads": "high",
        "shell-true": "medium",
    }
    assert all("fingerprints" not in e["attributes"] for e in found)
    assert len(ids(found)) == 2


@pytest.mark.parametrize(
    ("scan1", "scan2", "extra"),
    [
        ("sarif/bandit.scan1.sarif", "sarif/bandit.scan2.sarif", {}),
        ("sarif/semgrep.scan1.sarif", "sarif/semgrep.scan2.sarif", {"time": WHEN}),
        ("bandit/bandit.scan1.json", "bandit/bandit.scan2.json", {}),
    ],
    ids=["bandit-sarif", "semgrep-sarif", "bandit-json"],
)
def test_code_findings_keep_their_ids_when_the_code_moves(
    scan1: str, scan2: str, extra: dict[str, Any]
) -> None:
    """Scan 2 ran on the same code moved three lines down: every finding keeps its id."""
    first = events(scan1, asset="repo", **extra)
    second = events(scan2, asset="repo", **extra)
    assert ids(first) == ids(second) and len(ids(first)) == len(first)
    assert {e["attributes"]["line"] for e in first} != {e["attributes"]["line"] for e in second}


def test_sarif_without_a_repository_asks_for_the_asset() -> None:
    """A run that names no repository, converted without --asset: clean rejections."""
    found = outputs("sarif/bandit.scan1.sarif")
    assert found and all(isinstance(o, Rejected) and "asset" in o.reason for o in found)


def test_bandit_json_matches_its_sarif() -> None:
    """Bandit's JSON and SARIF outputs of one scan give the same severities and rules."""
    as_json = events("bandit/bandit.scan1.json", asset="repo")
    as_sarif = events("sarif/bandit.scan1.sarif", asset="repo")
    assert sorted((e["attributes"]["rule_id"], e["severity"]) for e in as_json) == sorted(
        (e["attributes"]["rule_id"], e["severity"]) for e in as_sarif
    )


# --- secret scanners -----------------------------------------------------------------------

GITLEAKS_SECRETS = [
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
]


def test_gitleaks_aws_key_id_is_the_resource_other_secrets_only_hashed() -> None:
    """gitleaks: the AWS key id names the resource; other secrets appear only as sha256."""
    found = events("gitleaks/gitleaks.json")
    aws = by(found, "rule", "aws-access-token")
    assert aws["resource"] == {"kind": "api_key", "id": "AKIAIOSFODNN7EXAMPLE"}
    assert aws["severity"] == "critical" and aws["time"] == "2026-11-25T09:00:00Z"
    assert aws["attributes"]["repo"] == "https://github.com/example-org/serving-config"
    generic = by(found, "rule", "generic-api-key")
    assert generic["severity"] == "medium"
    assert generic["resource"]["id"] == fingerprint(GITLEAKS_SECRETS[0])
    assert generic["attributes"]["secret_redacted"] == "wJal…(40)"
    assert by(found, "rule", "slack-bot-token")["severity"] == "high"


@pytest.mark.parametrize(
    ("fixture", "secrets"),
    [
        ("gitleaks/gitleaks.json", GITLEAKS_SECRETS),
        (
            "trufflehog/trufflehog.jsonl",
            [
                "AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "ghp_R7mB2wXq9ZtK4vN1cL8sD3fH6jP0aE5yU2iO",
            ],
        ),
        ("sarif/bandit.scan1.sarif", ["hunter2hunter2"]),
        ("bandit/bandit.scan1.json", ["hunter2hunter2"]),
    ],
)
def test_secret_values_never_appear_in_the_output(fixture: str, secrets: list[str]) -> None:
    """Grep the converted events for every secret value of the report: none is there."""
    raw = (FIXTURES / fixture).read_bytes().decode()
    assert all(s in raw for s in secrets)  # the report does hold them
    out = b"".join(orjson.dumps(e) for e in events(fixture, asset="repo", time=WHEN)).decode()
    for secret in secrets:
        assert secret not in out
        assert secret[4:-4] not in out


def test_trufflehog_verified_aws_key_critical_with_git_time() -> None:
    """TruffleHog: verified → critical; the git timestamp with its offset is the event time."""
    found = events("trufflehog/trufflehog.jsonl", time=WHEN)
    aws = by(found, "detector", "AWS")
    assert aws["resource"]["id"] == "AKIAIOSFODNN7EXAMPLE"
    assert aws["severity"] == "critical" and aws["attributes"]["verified"] is True
    assert aws["time"] == "2026-11-25T09:00:00Z"
    github = by(found, "detector", "Github")
    assert github["severity"] == "high" and github["attributes"]["time_source"] == "caller"
    assert github["resource"]["id"].startswith("sha256:")


def test_detect_secrets_keeps_its_sha1_and_skips_audited_false_positives() -> None:
    """detect-secrets: one event per result, resource by its SHA-1; is_secret false skipped."""
    found = events("detect-secrets/detect-secrets.json", asset="repo")
    assert len(found) == 6
    assert Counter(e["severity"] for e in found) == {"critical": 2, "medium": 3, "high": 1}
    assert all(e["resource"]["id"].startswith("sha1:") for e in found)
    doc = orjson.loads((FIXTURES / "detect-secrets/detect-secrets.json").read_bytes())
    doc["results"]["settings.py"][0]["is_secret"] = False
    outs = list(convert(io.BytesIO(orjson.dumps(doc)), "detect-secrets", Context()))
    assert sum(isinstance(o, Skipped) for o in outs) == 1


def test_leak_severity_table() -> None:
    """Cloud keys and private keys critical, generic medium, other tokens high, verified critical."""
    assert leak_severity("aws-access-token") == "critical"
    assert leak_severity("private-key") == "critical"
    assert leak_severity("generic-api-key") == "medium"
    assert leak_severity("Base64 High Entropy String") == "medium"
    assert leak_severity("github-pat") == "high"
    assert leak_severity("Github", verified=True) == "critical"


# --- model-file scanners -------------------------------------------------------------------


def test_modelscan_unsafe_operator_on_the_named_model() -> None:
    """modelscan: CRITICAL → critical; the caller's model name is resource id and name."""
    [event] = events("modelscan/modelscan.json", asset="fraud-scorer")
    assert event["type"] == "model.unsafe_file" and event["severity"] == "critical"
    assert event["resource"] == {"kind": "model", "id": "fraud-scorer", "name": "fraud-scorer"}
    assert (event["attributes"]["module"], event["attributes"]["operator"]) == ("posix", "system")
    assert event["attributes"]["file"] == "classifier.pkl"


def test_picklescan_dangerous_global_summary_skipped() -> None:
    """picklescan: a dangerous import is critical; summary lines are counted as skipped."""
    found = outputs("picklescan/picklescan.txt", asset="fraud-scorer", time=WHEN)
    [event] = [o for o in found if isinstance(o, dict)]
    assert event["severity"] == "critical" and event["resource"]["name"] == "fraud-scorer"
    assert event["attributes"]["file"].endswith("models/classifier.pkl")
    assert sum(isinstance(o, Skipped) for o in found) == 5


# --- runtime and logs ----------------------------------------------------------------------


def test_falco_priority_table_and_image_resource() -> None:
    """Falco: Notice low, Warning medium, Critical critical; the container image as resource."""
    found = events("falco/falco.jsonl")
    assert {e["attributes"]["rule"]: e["severity"] for e in found} == {
        "Terminal shell in container": "low",
        "Read sensitive file untrusted": "medium",
        "PTRACE attached to process": "critical",
    }
    shell = by(found, "rule", "Terminal shell in container")
    assert shell["resource"]["id"] == "registry.example.com/ml/fraud-scorer-serving:3.2.0"
    assert shell["labels"] == {
        "k8s_namespace": "models-prod",
        "k8s_pod": "fraud-scorer-predictor-7d9c6b5f4-x2k8p",
    }
    assert shell["actor"]["id"] == "root"
    assert by(found, "rule", "PTRACE attached to process")["resource"] == {
        "kind": "endpoint",
        "id": "gpu-node-7",
        "name": "gpu-node-7",
    }


def test_cloudtrail_key_use_iam_change_and_console_login() -> None:
    """CloudTrail: calls signed with a key → key.used (id, IP, agent); IAM and sign-in → auth.*."""
    found = outputs("cloudtrail/cloudtrail.json")
    made = [o for o in found if isinstance(o, dict)]
    assert Counter(e["type"] for e in made) == {
        "key.used": 4,
        "auth.iam_change": 1,
        "auth.console_login": 1,
    }
    assert sum(isinstance(o, Skipped) for o in found) == 1
    first = made[0]
    assert first["id"] == "2f3b9d5c-1e7a-4c0b-8d6e-5f4a3b2c1d0e"
    assert first["resource"] == {
        "kind": "api_key",
        "id": "AKIAIOSFODNN7EXAMPLE",
        "name": "inference-gateway-ci",
    }
    assert first["actor"]["ip"] == "203.0.113.77" and first["actor"]["user_agent"].startswith(
        "aws-cli/"
    )
    assert first["attributes"]["api"] == "sts:GetCallerIdentity" and first["severity"] == "low"
    denied = by(made, "error_code", "AccessDenied")
    assert denied["severity"] == "medium"
    [iam] = [e for e in made if e["type"] == "auth.iam_change"]
    assert iam["severity"] == "high" and iam["resource"]["id"] == "model-registry-admin"
    assert iam["id"] == "c4d3e2f1-a0b9-4c8d-7e6f-5a4b3c2d1e0f:iam"
    [login] = [e for e in made if e["type"] == "auth.console_login"]
    assert login["severity"] == "high" and login["attributes"]["root"] is True


def test_cloudtrail_as_json_lines_gives_the_same_events() -> None:
    """One record per line (CloudWatch Logs, EventBridge) converts like the log file."""
    records = orjson.loads((FIXTURES / "cloudtrail/cloudtrail.json").read_bytes())["Records"]
    lines = b"\n".join(orjson.dumps(r) for r in records)
    as_lines = [o for o in convert(io.BytesIO(lines), "cloudtrail") if isinstance(o, dict)]
    assert as_lines == events("cloudtrail/cloudtrail.json")


def test_k8s_audit_exec_and_secret_reads_in_model_serving() -> None:
    """k8s audit: exec into a serving pod high; secret reads by serving workloads; stages once."""
    found = events("k8s-audit/k8s-audit.jsonl")
    exec_ = next(e for e in found if e["type"] == "auth.anomaly")
    assert exec_["severity"] == "high" and exec_["id"] == "0c5a7e1f-3b2d-4e8a-9f6c-1d2e3f4a5b6c"
    assert exec_["resource"]["id"] == "models-prod/fraud-scorer-predictor-7d9c6b5f4-x2k8p"
    assert exec_["actor"]["ip"] == "203.0.113.77" and exec_["time"] == "2026-11-25T09:21:44.908172Z"
    secrets = {e["resource"]["id"]: e["severity"] for e in found if e["type"] == "secret.accessed"}
    assert secrets == {
        "k8s:models-prod/fraud-scorer-storage-credentials": "medium",
        "k8s:models-prod/*": "medium",  # a list in a serving namespace, refused: one step lower
        "k8s:kube-system/bootstrap-token-abcdef": "info",  # the control plane
    }


def test_ocsf_by_class_with_validation_and_epoch_ms_time() -> None:
    """OCSF: classes 2002/2004/3002/6003 map by class; an unsupported class is rejected."""
    found = outputs("ocsf/ocsf.json")
    made = [o for o in found if isinstance(o, dict)]
    [rejected] = [o for o in found if isinstance(o, Rejected)]
    assert "4001" in rejected.reason
    assert {e["type"]: e["severity"] for e in made} == {
        "threat.detected": "high",
        "vulnerability.found": "critical",
        "key.used": "info",
        "auth.login_failed": "medium",
    }
    key = next(e for e in made if e["type"] == "key.used")
    assert key["resource"]["id"] == "AKIAIOSFODNN7EXAMPLE" and key["source"] == "cloud-audit-bridge"
    assert key["time"] == "2026-11-25T09:12:00Z"
    vuln = next(e for e in made if e["type"] == "vulnerability.found")
    assert vuln["attributes"]["cvss"] == 9.8 and vuln["attributes"]["cve"] == "CVE-2025-32434"


def test_ocsf_invalid_record_is_rejected_with_the_models_reason() -> None:
    """A record its class's model refuses is a rejection naming the field."""
    record = orjson.loads((FIXTURES / "ocsf/ocsf.json").read_bytes())[0]
    record["severity_id"] = "very"
    [out] = list(convert(io.BytesIO(orjson.dumps(record)), "ocsf"))
    assert isinstance(out, Rejected) and "DetectionFinding" in out.reason


# --- privacy and ML monitors ---------------------------------------------------------------


def test_presidio_per_document_and_entity_never_the_text() -> None:
    """Presidio: one event per document and entity type; score < 0.5 one step lower."""
    found = events("presidio/presidio.jsonl", asset="support-tickets", time=WHEN)
    severities = {
        (e["attributes"]["document"][-8:], e["attributes"]["entity_type"]): e["severity"]
        for e in found
    }
    assert severities == {
        ("4471.txt", "CREDIT_CARD"): "high",
        ("4471.txt", "EMAIL_ADDRESS"): "medium",
        ("4471.txt", "PERSON"): "medium",
        ("4471.txt", "URL"): "low",
        ("4472.txt", "PHONE_NUMBER"): "low",
        ("4472.txt", "US_SSN"): "high",
    }
    card = by(found, "entity_type", "CREDIT_CARD")
    assert card["attributes"]["locations"] == [{"start": 208, "end": 227}]
    assert card["resource"] == {"kind": "dataset", "id": "support-tickets"}


def test_evidently_drift_and_failed_tests() -> None:
    """Evidently 0.7: dataset drift high, drifted columns medium, failed critical test high."""
    found = events("evidently/evidently.json", asset="fraud-features", time=WHEN)
    drift = [e for e in found if e["type"] == "model.drift"]
    assert sorted((e["attributes"].get("column", "*"), e["severity"]) for e in drift) == [
        ("*", "high"),
        ("amount", "medium"),
        ("country", "medium"),
    ]
    [quality] = [e for e in found if e["type"] == "data.quality_failed"]
    assert quality["severity"] == "high" and quality["attributes"]["column"] == "age"
    assert {e["resource"]["id"] for e in found} == {"fraud-features"}


def test_great_expectations_failed_expectations_without_the_values() -> None:
    """GX 1.x: failed expectations by their severity; unexpected values are never copied."""
    found = events("great-expectations/great-expectations.json", asset="fraud-features")
    assert {e["attributes"]["expectation"] for e in found} == {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
    }
    assert {e["severity"] for e in found} == {"high"}
    doc = orjson.loads((FIXTURES / "great-expectations/great-expectations.json").read_bytes())
    loaded = datetime.strptime(doc["meta"]["batch_markers"]["ge_load_time"], "%Y%m%dT%H%M%S.%fZ")
    assert {e["time"] for e in found} == {loaded.isoformat() + "Z"}
    raw = b"".join(orjson.dumps(e) for e in found)
    assert b"partial_unexpected" not in raw and b'"xx"' not in raw


def test_garak_failed_probes_with_failure_rate() -> None:
    """garak: an event per failing probe/detector, severity by failure rate; passes skipped."""
    found = events("garak/garak.report.jsonl", asset="fraud-chat-prod")
    rates = {
        (e["attributes"]["probe"], e["attributes"]["detector"]): (
            e["attributes"]["failure_rate"],
            e["severity"],
        )
        for e in found
    }
    assert rates == {
        ("promptinject.HijackHateHumansMini", "promptinject.AttackRogueString"): (0.38, "high"),
        ("dan.Dan_11_0", "mitigation.MitigationBypass"): (0.8, "critical"),
        ("leakreplay.LiteratureCloze", "base.TriggerListDetector"): (0.03, "low"),
    }
    assert {e["resource"]["id"] for e in found} == {"fraud-chat-prod"}
    assert {e["time"] for e in found} == {"2026-11-25T09:40:02.118204Z"}
    assert b"I hate humans" not in b"".join(orjson.dumps(e) for e in found)
    assert [rate_severity(r) for r in (0.05, 0.1, 0.3, 0.6)] == [
        "low",
        "medium",
        "high",
        "critical",
    ]


# --- envelopes -----------------------------------------------------------------------------


def test_cloudevents_data_converted_by_schema_type_or_detection() -> None:
    """CloudEvents: a SecurityEvent passes through; Trivy by dataschema; text by detection."""
    found = events("cloudevents/cloudevents.json")
    assert Counter(e["source"] for e in found) == {"drift-monitor": 1, "trivy": 2, "picklescan": 1}
    drift = next(e for e in found if e["source"] == "drift-monitor")
    assert drift["id"] == "drift-0002" and drift["time"] == "2026-11-25T10:05:00Z"
    pickle = next(e for e in found if e["source"] == "picklescan")
    assert pickle["time"] == "2026-11-25T08:47:00Z"  # the envelope's time
    assert pickle["resource"]["id"] == "fraud-scorer"  # the envelope's subject
    assert pickle["attributes"]["cloudevent"]["type"] == "com.example.ci.picklescan"


def test_cloudevents_binary_mode_headers() -> None:
    """A Kafka binary-mode CloudEvent: attributes in ce_ headers, the report as the value."""
    from responder.events.normalize.cloudevents import read_binary
    from responder.events.normalize.registry import dispatch

    headers = {
        "ce_specversion": b"1.0",
        "ce_id": b"42",
        "ce_source": b"//ci/pipelines/7",
        "ce_type": b"com.example.gitleaks.report",
        "content-type": b"application/json",
    }
    value = (FIXTURES / "gitleaks/gitleaks.json").read_bytes()
    found = [o for o in read_binary(headers, value, Context(), dispatch()) if isinstance(o, dict)]
    assert len(found) == 3 and {e["source"] for e in found} == {"gitleaks"}
    bad = list(read_binary({"ce_specversion": b"1.0"}, value, Context(), dispatch()))
    assert [type(o) for o in bad] == [Rejected]
