"""Evidently reports (`snapshot.json()` / `save_json()` of a `Report` run, Evidently 0.7; the
0.4-0.6 `Report.json()` and `TestSuite.json()` too) → `model.drift` and `data.quality_failed`.

| Evidently | event type | event severity |
|---|---|---|
| dataset drift: `DriftedColumnsCount` share ≥ its `drift_share` (0.4-0.6: `DatasetDriftMetric.dataset_drift`) | `model.drift` | high |
| column drift: `ValueDrift` beyond its threshold (a p-value below, a distance at or above; 0.4-0.6: `drift_by_columns[].drift_detected`) | `model.drift` | medium |
| a test on a drift metric that failed | `model.drift` | as a failed test |
| a test that failed (`status: FAIL`) | `data.quality_failed` | high if `is_critical`, else medium |
| a test that warned (`WARNING`) / could not run (`ERROR`) | `data.quality_failed` | low / medium |
| metrics and tests without a finding (`SUCCESS`, no drift) | skipped (counted) | |

Resource: the dataset (`dataset`): the caller's asset id (required; the report does not name
it). Time: the report's `timestamp` when present (0.4-0.6), else the caller's. Id: asset +
the metric's or test's configuration (column, method, test), so a check that fails again in
the next run is the same finding. The report is read whole (it grows with columns and tests,
not with rows).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from responder.events.normalize.core import (
    Context,
    Draft,
    Invalid,
    Item,
    Rejected,
    Skipped,
    array,
    compact,
    first,
    number,
    obj,
    parse_time,
    shorten,
    sub,
    text,
)
from responder.events.normalize.reading import walk
from responder.events.schema import SeverityName

TEST_SEVERITY: dict[str, SeverityName] = {"FAIL": "medium", "WARNING": "low", "ERROR": "medium"}


def detect(head: bytes) -> bool:
    return b"evidently:" in head or (
        b'"metrics"' in head
        and (
            b'"metric_name"' in head
            or b'"DatasetDriftMetric"' in head
            or b'"DataDriftTable"' in head
        )
    )


def read(stream: IO[bytes], context: Context) -> Iterator[Item]:
    doc = next((v for _, v in walk(stream, ("",))), None)
    report = obj(doc, "report")
    if not context.asset:
        raise Invalid("no dataset: Evidently reports do not name it (give the asset id)")
    when = parse_time(report.get("timestamp"), naive_is_utc=True)
    for index, metric in enumerate(array(report, "metrics")):
        where = f"metrics[{index}]"
        try:
            yield from _metric(obj(metric, "metric"), when, context)
        except Invalid as exc:
            yield Rejected(str(exc), where=where)
    for index, test in enumerate(array(report, "tests")):
        where = f"tests[{index}]"
        try:
            yield _test(obj(test, "test"), when, context)
        except Invalid as exc:
            yield Rejected(str(exc), where=where)


def _draft(
    key: tuple[str, ...],
    kind: str,
    severity: SeverityName,
    title: str,
    when: Any,
    context: Context,
    attributes: dict[str, Any],
) -> Draft:
    assert context.asset
    return Draft(
        key=(context.asset, *key),
        type=kind,
        severity=severity,
        title=shorten(title),
        resource={"kind": "dataset", "id": context.asset},
        time=when,
        attributes=compact(attributes),
    )


def _metric(metric: dict[str, Any], when: Any, context: Context) -> Iterator[Item]:
    if "metric" in metric and "result" in metric:  # 0.4-0.6
        yield from _legacy_metric(metric, when, context)
        return
    config = sub(metric, "config")
    kind = text(config, "type") or ""
    name = text(metric, "metric_name") or kind
    value = metric.get("value")
    if kind.endswith("DriftedColumnsCount"):
        share = number(value, "share") if isinstance(value, dict) else None
        limit = number(config, "drift_share")
        limit = 0.5 if limit is None else limit
        if share is None:
            raise Invalid("DriftedColumnsCount without a share")
        if share < limit:
            yield Skipped("no dataset drift")
            return
        yield _draft(
            (name,),
            "model.drift",
            "high",
            f"Dataset drift: {share:.0%} of columns drifted (threshold {limit:.0%})",
            when,
            context,
            {
                "metric": name,
                "drift_share": round(share, 4),
                "threshold": limit,
                "drifted_columns": number(value, "count") if isinstance(value, dict) else None,
                "scope": "dataset",
            },
        )
        return
    if kind.endswith("ValueDrift"):
        score = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        method = text(config, "method") or ""
        threshold = number(config, "threshold")
        column = text(config, "column") or "?"
        if score is None or threshold is None:
            raise Invalid("ValueDrift without a value or threshold")
        drifted = score < threshold if "p_value" in method else score >= threshold
        if not drifted:
            yield Skipped("no column drift")
            return
        yield _draft(
            (name,),
            "model.drift",
            "medium",
            f"Column {column} drifted ({method}: {score:.3g}, threshold {threshold:g})",
            when,
            context,
            {
                "metric": name,
                "column": column,
                "method": method,
                "score": float(score),
                "threshold": threshold,
                "scope": "column",
            },
        )
        return
    yield Skipped("metric without a finding of its own")


def _legacy_metric(metric: dict[str, Any], when: Any, context: Context) -> Iterator[Item]:
    name = text(metric, "metric") or ""
    result = sub(metric, "result")
    if name == "DatasetDriftMetric":
        if result.get("dataset_drift") is not True:
            yield Skipped("no dataset drift")
            return
        share = number(result, "share_of_drifted_columns") or 0.0
        yield _draft(
            (name,),
            "model.drift",
            "high",
            f"Dataset drift: {share:.0%} of columns drifted",
            when,
            context,
            {
                "metric": name,
                "drift_share": share,
                "threshold": number(result, "drift_share"),
                "drifted_columns": number(result, "number_of_drifted_columns"),
                "scope": "dataset",
            },
        )
        return
    if name == "DataDriftTable":
        for column, detail in sub(result, "drift_by_columns").items():
            detail = obj(detail, f"drift_by_columns[{column}]")
            if detail.get("drift_detected") is not True:
                yield Skipped("no column drift")
                continue
            method = text(detail, "stattest_name") or ""
            yield _draft(
                (name, str(column), method),
                "model.drift",
                "medium",
                f"Column {column} drifted ({method}: {number(detail, 'drift_score')})",
                when,
                context,
                {
                    "metric": name,
                    "column": str(column),
                    "method": method,
                    "score": number(detail, "drift_score"),
                    "threshold": number(detail, "stattest_threshold"),
                    "scope": "column",
                },
            )
        return
    yield Skipped("metric without a finding of its own")


def _test(test: dict[str, Any], when: Any, context: Context) -> Item:
    status = (text(test, "status") or "").upper()
    if status not in TEST_SEVERITY:
        return Skipped(f"test {status.lower() or 'without status'}")
    config = sub(test, "test_config")
    metric = sub(sub(test, "metric_config"), "params")
    critical = config.get("is_critical") is not False
    severity: SeverityName = "high" if status == "FAIL" and critical else TEST_SEVERITY[status]
    metric_type = text(metric, "type") or text(test, "group") or ""
    drift = "drift" in metric_type.lower()
    name = first(text(test, "name"), text(test, "id")) or "test"
    key = (
        "test",
        text(test, "id") or "",
        text(sub(test, "metric_config"), "metric_id") or "",
        text(config, "type") or name,
    )
    return _draft(
        key,
        "model.drift" if drift else "data.quality_failed",
        severity,
        f"Evidently test {status.lower()}: {name}",
        when,
        context,
        {
            "test": name,
            "status": status,
            "description": shorten(text(test, "description") or "", 500),
            "metric": metric_type,
            "column": text(metric, "column"),
            "critical": critical,
            "parameters": {
                k: v
                for k, v in sub(test, "parameters").items()
                if isinstance(v, str | int | float | bool)
            },
        },
    )
