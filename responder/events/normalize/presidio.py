"""Presidio analyzer results → `privacy.pii_exposed`, one event per document and entity type.

Presidio has no report file of its own: it accepts what its analyzer returns, serialized as
JSON (`RecognizerResult.to_dict()`, the REST `/analyze` response): a list of results for one
document, or one line per document, each such a list or `{"document": ID, "results": [...]}`
(the document's id: a file, a table row key, a request id).

| entity type | event severity |
|---|---|
| CREDIT_CARD, CRYPTO, IBAN_CODE, US_BANK_NUMBER, US_SSN, US_ITIN, US_PASSPORT, UK_NHS, MEDICAL_LICENSE, and other national ids | high |
| PERSON, EMAIL_ADDRESS, PHONE_NUMBER, LOCATION, US_DRIVER_LICENSE, IP_ADDRESS, and any other type | medium |
| DATE_TIME, NRP, URL | low |
| every result below score 0.5 | one step lower |

Resource: the dataset (`dataset`): the caller's asset id (required: the results do not name
it). Time: the caller's (the results carry none). Id: asset + document + entity type. Kept:
the count, the highest score, the recognizer and the first locations (`start`, `end`);
never the matched text (the results do not carry it, and a `text` field is dropped).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Any

from responder.events.normalize.core import (
    Context,
    Draft,
    Invalid,
    Item,
    Rejected,
    number,
    obj,
    sub,
    text,
)
from responder.events.normalize.reading import walk
from responder.events.schema import SeverityName

HIGH = re.compile(
    r"CREDIT_CARD|CRYPTO|IBAN|BANK|SSN|ITIN|PASSPORT|NHS|MEDICAL|NATIONAL|_ID$|AADHAAR|PESEL|NIF|NIE|TAX",
    re.I,
)
LOW = {"DATE_TIME", "NRP", "URL"}
ORDER: tuple[SeverityName, ...] = ("info", "low", "medium", "high", "critical")
MAX_LOCATIONS = 20


def detect(head: bytes) -> bool:
    return b'"entity_type"' in head and b'"score"' in head


def read(stream: IO[bytes], context: Context) -> Iterator[Item]:
    found = walk(stream, ("",), multiple=True)
    for index, (_, value) in enumerate(found):
        where = f"document {index + 1}"
        try:
            yield from _events(value, where, context)
        except Invalid as exc:
            yield Rejected(str(exc), where=where)


def _severity(entity: str, score: float) -> SeverityName:
    severity: SeverityName = "high" if HIGH.search(entity) else "low" if entity in LOW else "medium"
    if score < 0.5:
        severity = ORDER[ORDER.index(severity) - 1]
    return severity


def _events(value: Any, where: str, context: Context) -> Iterator[Draft]:
    if isinstance(value, dict):
        document = text(value, "document") or text(value, "id") or where
        results = value.get("results")
    else:
        document, results = where, value
    if not isinstance(results, list):
        raise Invalid("expected a list of analyzer results")
    if not context.asset:
        raise Invalid("no dataset: analyzer results do not name it (give the asset id)")
    by_type: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        result = obj(result, "result")
        entity = text(result, "entity_type")
        if entity is None:
            raise Invalid("entity_type: missing")
        by_type.setdefault(entity, []).append(result)
    for entity, found in sorted(by_type.items()):
        scores = [s for s in (number(r, "score") for r in found) if s is not None]
        top = max(scores, default=0.0)
        recognizers = sorted(
            {
                n
                for n in (text(sub(r, "recognition_metadata"), "recognizer_name") for r in found)
                if n
            }
        )
        locations = [
            {"start": int(s), "end": int(e)}
            for s, e in ((number(r, "start"), number(r, "end")) for r in found[:MAX_LOCATIONS])
            if s is not None and e is not None
        ]
        yield Draft(
            key=(context.asset, document, entity),
            type="privacy.pii_exposed",
            severity=_severity(entity, top),
            title=f"{entity} found {len(found)} time(s) in {document}",
            resource={"kind": "dataset", "id": context.asset},
            time=None,
            attributes={
                "entity_type": entity,
                "count": len(found),
                "max_score": round(top, 4),
                "document": document,
                "recognizers": recognizers,
                "locations": locations,
            },
        )
