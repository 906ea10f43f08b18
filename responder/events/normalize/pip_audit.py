"""pip-audit JSON (`pip-audit -f json`) → `vulnerability.found`, one event per vulnerability of
each dependency.

pip-audit reports no severity: every vulnerability is `medium` (a rule can raise what matters by
id or alias). Resource: the package (`package`, `pypi:<name>` in PEP 503 normal form, its
version); the environment or requirements file audited is the caller's asset id
(`attributes.asset`). No time in the report: the caller's is used. Id: asset + package +
vulnerability id. Dependencies pip-audit skipped (`skip_reason`) are counted as skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Any

from responder.events.normalize.core import (
    Context,
    Item,
    Skipped,
    array,
    each,
    need,
    obj,
    shorten,
    text,
)
from responder.events.normalize.reading import walk
from responder.events.normalize.vulns import finding, first_cve, package_resource


def detect(head: bytes) -> bool:
    return b'"dependencies"' in head and (b'"vulns"' in head or b'"skip_reason"' in head)


def read(stream: IO[bytes], context: Context) -> Iterator[Item]:
    deps = (
        (f"dependencies[{i}]", v) for i, (_, v) in enumerate(walk(stream, ("dependencies.item",)))
    )
    yield from each(deps, lambda d: _events(obj(d, "dependency"), context))


def _events(dep: dict[str, Any], context: Context) -> Iterator[Item]:
    name = need(dep, "name")
    normal = re.sub(r"[-_.]+", "-", name).lower()
    version = text(dep, "version")
    if text(dep, "skip_reason"):
        yield Skipped(
            f"dependency skipped by pip-audit: {shorten(str(text(dep, 'skip_reason')), 80)}"
        )
        return
    for vuln in array(dep, "vulns"):
        vuln = obj(vuln, "vulns[]")
        vuln_id = need(vuln, "id")
        aliases = [a for a in array(vuln, "aliases") if isinstance(a, str)]
        fixes = [f for f in array(vuln, "fix_versions") if isinstance(f, str)]
        yield finding(
            key=(context.asset or "", normal, vuln_id),
            severity="medium",
            title=f"{vuln_id} in {name} {version or ''}".strip(),
            resource=package_resource(f"pypi:{normal}", name, version),
            time=None,
            cve=first_cve([vuln_id, *aliases]),
            vulnerability_id=vuln_id,
            aliases=aliases,
            package=name,
            ecosystem="PyPI",
            installed_version=version,
            fixed_version=", ".join(fixes),
            description=shorten(text(vuln, "description") or "", 500),
        )
