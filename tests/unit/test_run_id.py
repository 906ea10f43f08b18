"""A run's id is the uuid5 of (playbook, incident, version) in the run namespace: ids of runs
stored before `run_id` hashed by itself must stay the ids the same changes name now (a
redelivered change finds its run by it)."""

from __future__ import annotations

import uuid

from hypothesis import example, given
from hypothesis import strategies as st

from responder.playbooks.runs import RUN_NAMESPACE, run_id


@given(st.text(), st.text(), st.integers(min_value=0, max_value=2**63))
@example("contain", "inc-1", 1)
@example("", "", 0)
@example("p|q", "é\u2028漢", 2**40)  # the separator inside a part, and non-ASCII text
def test_a_run_id_is_the_uuid5_of_its_name(playbook_id: str, incident_id: str, v: int) -> None:
    expected = str(uuid.uuid5(RUN_NAMESPACE, f"{playbook_id}|{incident_id}|{v}"))
    assert run_id(playbook_id, incident_id, v) == expected
    assert uuid.UUID(expected).version == 5


def test_a_known_run_keeps_its_id() -> None:
    assert run_id("contain", "inc-1", 1) == str(uuid.uuid5(RUN_NAMESPACE, "contain|inc-1|1"))
    assert run_id("contain", "inc-1", 1) != run_id("contain", "inc-1", 2)
