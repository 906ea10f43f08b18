"""`guards.max_runs_per_hour` holds when two transactions start runs of a playbook at once (two
workers' sinks, or two transactions of one): neither may count the runs before the other's."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, col, select

from responder.playbooks.loader import load_playbooks
from responder.playbooks.runs import RUN_LIMIT_LOCK, PlaybookRun, _lock_key, lock_run_limits
from responder.playbooks.start_sql import RunStarter
from responder.streams.sink import store_changes
from tests.support.runner_kit import Kit, change

LIMITED = """
id: limited
title: Tell
on: {kind: credential_compromise}
guards: {max_runs_per_hour: 2}
steps:
  - {id: tell, action: slack.notify}
"""


def waiting_on_an_advisory_lock(kit: Kit) -> bool:
    """Whether some transaction waits for an advisory lock (PostgreSQL)."""
    with kit.db.connect() as conn:
        found = conn.execute(
            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        )
        return bool(found.scalar())


def test_two_transactions_at_once_start_no_more_runs_than_the_limit(kit: Kit) -> None:
    kit.playbook("limited", LIMITED)
    counted = threading.Event()  # the first transaction has counted and inserted its runs
    second_done = threading.Event()
    errors: list[BaseException] = []

    def store(incidents: list[str], hold: bool) -> None:
        try:
            starter = RunStarter(load_playbooks(kit.directory))
            with Session(kit.db) as session, session.begin():
                store_changes(session, [change(1, incident_id=i) for i in incidents], starter)
                if hold:  # commit once the other transaction waits (or, unguarded, is done)
                    counted.set()
                    for _ in range(100):
                        if second_done.is_set() or (
                            postgresql and waiting_on_an_advisory_lock(kit)
                        ):
                            break
                        time.sleep(0.05)
        except BaseException as exc:  # the assertion below names it
            errors.append(exc)
            counted.set()
        finally:
            if not hold:
                second_done.set()

    postgresql = kit.db.dialect.name == "postgresql"  # (SQLite: its write lock waits)
    first = threading.Thread(target=store, args=(["inc-1", "inc-2"], True))
    first.start()
    assert counted.wait(30)
    second = threading.Thread(target=store, args=(["inc-3", "inc-4"], False))
    second.start()
    first.join(30)
    second.join(30)
    assert errors == []
    with Session(kit.db) as session:
        runs = session.exec(select(PlaybookRun).order_by(col(PlaybookRun.incident_id))).all()
    assert [(r.incident_id, r.status) for r in runs] == [
        ("inc-1", "pending"),
        ("inc-2", "pending"),
        ("inc-3", "blocked_by_guard"),
        ("inc-4", "blocked_by_guard"),
    ]


def test_each_playbook_is_counted_against_its_own_limit(kit: Kit) -> None:
    """One batch starting runs of three playbooks: each limit counts its playbook's runs (one
    count for all of them), and a dry-run playbook counts toward none."""
    kit.playbook("limited", LIMITED)  # 2 an hour
    kit.playbook("once", LIMITED.replace("id: limited", "id: once").replace(": 2}", ": 1}"))
    kit.playbook(
        "planned",
        LIMITED.replace("id: limited", "id: planned\nmode: dry_run").replace(": 2}", ": 1}"),
    )
    kit.apply(*(change(1, incident_id=f"inc-{i}") for i in range(1, 4)))
    kit.apply(change(1, incident_id="inc-4"))
    with Session(kit.db) as session:
        runs = session.exec(select(PlaybookRun)).all()
    statuses: dict[str, list[str]] = {}
    for run in sorted(runs, key=lambda r: r.incident_id):
        statuses.setdefault(run.playbook_id, []).append(run.status)
    blocked = "blocked_by_guard"
    assert statuses == {
        "limited": ["pending", "pending", blocked, blocked],
        "once": ["pending", blocked, blocked, blocked],
        "planned": ["pending"] * 4,
    }


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # (SQLite takes no locks)
def test_one_statement_holds_the_run_limit_of_every_playbook(db: Engine) -> None:
    """On PostgreSQL `lock_run_limits` holds a lock per playbook for the transaction."""
    with Session(db) as session, session.begin():
        lock_run_limits(session, ["b", "a", "c", "a"])
        held = session.connection().execute(
            text(
                "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = :lock AND pid = pg_backend_pid()"
            ),
            {"lock": RUN_LIMIT_LOCK},
        )
        keys = {_lock_key(p) & 0xFFFFFFFF for p in "abc"}
        assert {int(k) for k in held.scalars()} == keys
