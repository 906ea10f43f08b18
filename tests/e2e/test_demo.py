"""`make demo`'s command on the test broker: the README's first command must keep working."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_opens_the_scenario_incidents_and_plans_their_playbooks(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "RESPONDER_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "RESPONDER_RULES_DIR": str(ROOT / "rules"),
        "RESPONDER_PLAYBOOKS__DIR": str(ROOT / "playbooks"),
        "RESPONDER_LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [sys.executable, "-m", "responder", "demo"],
        cwd=tmp_path,  # the demo writes .responder/ where it runs
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "demo OK: 3 incidents, 3 playbook runs planned" in out
    assert "contain-leaked-credential" in out and "vulnerable-serving-image" in out
    assert "dead-lettered: schema violation" in out
    assert "audit verify: OK" in out
    assert (tmp_path / ".responder" / "demo.db").is_file()
