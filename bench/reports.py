"""Converter benchmark: a large generated Trivy report through `responder convert`.

Writes a Trivy JSON report of about `--mb` megabytes (real field set, 2 KB descriptions,
CVSS and references, as image scans of large ML images produce), then runs
`python -m responder convert REPORT --format trivy > /dev/null` in a child process and prints
the events, the wall time, the events/s and the child's peak RSS (`ru_maxrss`), to show that
memory stays flat however large the report. Run: `python bench/reports.py --mb 200`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADER = {
    "SchemaVersion": 2,
    "CreatedAt": "2026-11-25T08:45:12.482913845Z",
    "ArtifactName": "registry.example.com/ml/big-serving:1.0.0",
    "ArtifactType": "container_image",
    "Metadata": {"OS": {"Family": "debian", "Name": "12.5"}, "ImageID": "sha256:" + "ab" * 32},
}


def vulnerability(i: int) -> dict[str, object]:
    score = round((i % 100) / 10, 1)
    return {
        "VulnerabilityID": f"CVE-2026-{i:06d}",
        "PkgID": f"pkg{i % 5000}@1.{i % 17}.0",
        "PkgName": f"pkg{i % 5000}",
        "PkgIdentifier": {"PURL": f"pkg:pypi/pkg{i % 5000}@1.{i % 17}.0", "UID": f"{i:016x}"},
        "InstalledVersion": f"1.{i % 17}.0",
        "FixedVersion": f"1.{i % 17 + 1}.0",
        "Status": "fixed",
        "SeveritySource": "nvd",
        "PrimaryURL": f"https://avd.aquasec.com/nvd/cve-2026-{i:06d}",
        "Title": f"pkg{i % 5000}: a synthetic vulnerability number {i}",
        "Description": ("A long advisory text. " * 100)[:2000],
        "Severity": ["LOW", "MEDIUM", "HIGH", "CRITICAL"][i % 4],
        "CweIDs": ["CWE-502"],
        "VendorSeverity": {"nvd": i % 4 + 1, "ghsa": i % 4 + 1},
        "CVSS": {
            "nvd": {"V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "V3Score": score}
        },
        "References": [f"https://example.com/advisory/{i}/{n}" for n in range(8)],
        "PublishedDate": "2026-01-01T00:00:00Z",
        "LastModifiedDate": "2026-02-01T00:00:00Z",
    }


def write_report(path: Path, megabytes: int) -> int:
    """Stream a report of about `megabytes` MB to `path`; returns the vulnerabilities written."""
    limit = megabytes * 1024 * 1024
    count = 0
    with path.open("w") as out:
        out.write(json.dumps(HEADER)[:-1])
        out.write(
            ', "Results": [{"Target": "Python", "Class": "lang-pkgs", "Type": "python-pkg", "Vulnerabilities": ['
        )
        while out.tell() < limit:
            if count:
                out.write(",")
            out.write(json.dumps(vulnerability(count)))
            count += 1
        out.write("]}]}")
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=200, help="report size in MB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "trivy.json"
        count = write_report(report, args.mb)
        size = report.stat().st_size
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "responder", "convert", str(report), "--format", "trivy"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "RESPONDER_LOG_LEVEL": "WARNING"},
        )
        elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"report: {size / 1e6:.0f} MB, {count} vulnerabilities")
    print(f"converted in {elapsed:.1f} s: {count / elapsed:,.0f} events/s")
    print(f"peak RSS of the converting process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
