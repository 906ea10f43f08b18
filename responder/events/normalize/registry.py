"""The accepted formats, by the tools' own names, and `detect` for `--format auto`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

from responder.events.normalize.cloudevents import Dispatch
from responder.events.normalize.core import Context, Item


@dataclass(frozen=True)
class Format:
    """One report format: how to recognise it and how to read it."""

    name: str
    produces: str  # the event types, for --help and the summary
    detect: Callable[[bytes], bool]
    read: Callable[[IO[bytes], Context], Iterator[Item]]
    sensitive: bool = False  # reports carry secret values: never copied to the DLQ or a log


def _formats() -> list[Format]:
    from responder.events.normalize import (
        bandit,
        cloudevents,
        cloudtrail,
        detect_secrets,
        evidently,
        falco,
        garak,
        gitleaks,
        great_expectations,
        grype,
        k8s_audit,
        modelscan,
        ocsf,
        osv_scanner,
        picklescan,
        pip_audit,
        presidio,
        sarif,
        securityevent,
        trivy,
        trufflehog,
    )

    # Detection order: envelopes first (their data may look like any other format), then the
    # formats with the most specific markers.
    return [
        Format(
            "cloudevents",
            "whatever its data converts to",
            cloudevents.detect,
            lambda stream, context: cloudevents.read(stream, context, dispatch()),
        ),
        Format("ocsf", "by class: see README", ocsf.detect, ocsf.read),
        Format("sarif", "code.weakness", sarif.detect, sarif.read),
        Format("trivy", "vulnerability.found", trivy.detect, trivy.read),
        Format("grype", "vulnerability.found", grype.detect, grype.read),
        Format("osv-scanner", "vulnerability.found", osv_scanner.detect, osv_scanner.read),
        Format("pip-audit", "vulnerability.found", pip_audit.detect, pip_audit.read),
        Format("bandit", "code.weakness", bandit.detect, bandit.read),
        Format("gitleaks", "secret.leaked", gitleaks.detect, gitleaks.read, sensitive=True),
        Format("trufflehog", "secret.leaked", trufflehog.detect, trufflehog.read, sensitive=True),
        Format("detect-secrets", "secret.leaked", detect_secrets.detect, detect_secrets.read),
        Format("modelscan", "model.unsafe_file", modelscan.detect, modelscan.read),
        Format("picklescan", "model.unsafe_file", picklescan.detect, picklescan.read),
        Format("falco", "runtime.* (by rule)", falco.detect, falco.read),
        Format("cloudtrail", "key.used, auth.*", cloudtrail.detect, cloudtrail.read),
        Format("k8s-audit", "auth.anomaly, secret.accessed", k8s_audit.detect, k8s_audit.read),
        Format("presidio", "privacy.pii_exposed", presidio.detect, presidio.read),
        Format("evidently", "model.drift, data.quality_failed", evidently.detect, evidently.read),
        Format(
            "great-expectations",
            "data.quality_failed",
            great_expectations.detect,
            great_expectations.read,
        ),
        Format("garak", "model.vulnerability", garak.detect, garak.read),
        Format("securityevent", "as given", securityevent.detect, securityevent.read),
    ]


FORMATS: dict[str, Format] = {f.name: f for f in _formats()}
NAMES = tuple(FORMATS)


def detect(head: bytes) -> Format | None:
    """The first format whose markers the report's first bytes carry."""
    for fmt in FORMATS.values():
        if fmt.detect(head):
            return fmt
    return None


def dispatch() -> Dispatch:
    """The formats an envelope's data may be in (every one but the envelopes themselves)."""
    readers = {name: f.read for name, f in FORMATS.items() if name != "cloudevents"}

    def named(head: bytes) -> str | None:
        found = detect(head)
        return None if found is None else found.name

    return Dispatch(readers, named)
