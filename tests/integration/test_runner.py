"""The durable playbook runner on SQLite and PostgreSQL, with fake ports for the actions.

Each test writes its playbooks, applies incident changes the way the sink does (the planner in
the same transaction) and ticks the runner like the worker's runner stage.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete
from sqlmodel import Session

from responder.actions.registry import ActionError
from responder.commands import Decision, IncidentCommand
from responder.incidents.store import IncidentEvent, get_incident
from responder.playbooks import runs
from responder.playbooks.decisions import DecisionError
from responder.playbooks.runs import PlaybookRun
from responder.settings import PlaybookSettings
from tests.support.fakes.http import response
from tests.support.runner_kit import KEY, Kit, change

pytestmark = pytest.mark.integration

CONTAIN = """
id: contain
title: Contain a used leaked key
on: {kind: credential_compromise, severity|gte: high}
guards: {require_evidence: false}  # evidence has tests of its own (test_evidence.py)
steps:
  - id: approve
    action: approval.request
    with: {prompt: "Deactivate {{ incident.group['resource.id'] }}?", timeout: 1h, on_timeout: deny}
  - id: deactivate
    action: aws.iam.deactivate_access_key
    if: "{{ steps.approve.output.approved }}"
    with: {access_key_id: "{{ incident.group['resource.id'] }}", user_name: ci-bot}
    undo:
      action: aws.iam.activate_access_key
      with: {access_key_id: "{{ steps.deactivate.output.access_key_id }}", user_name: ci-bot}
  - id: notify
    action: slack.notify
    with:
      text: "{{ 'deactivated' if steps.approve.output.approved else 'NOT deactivated' }} by {{ steps.approve.output.decided_by }}"
  - id: ack
    action: incident.update
    with: {status: acknowledged, comment: "run {{ playbook.id }}"}
"""

AUTOMATIC = """
id: auto
title: Deactivate then tell
on: {kind: credential_compromise}
guards:
  require_evidence: false
  actions:
    aws.iam.deactivate_access_key: {per_hour: 1}
steps:
  - id: deactivate
    action: aws.iam.deactivate_access_key
    with: {access_key_id: "{{ incident.group['resource.id'] }}", user_name: ci-bot}
    retry: {attempts: 3, backoff: 10ms}
    undo:
      action: aws.iam.activate_access_key
      with: {access_key_id: "{{ steps.deactivate.output.access_key_id }}", user_name: ci-bot}
  - id: ticket
    action: http.request
    with:
      url: https://tickets.example/api
      json: {key: "{{ steps.deactivate.output.access_key_id }}", status: "{{ steps.deactivate.output.status }}"}
      headers: {Authorization: "Bearer t0ps3cret"}
    on_error: continue
  - id: notify
    action: slack.notify
    with: {text: "ticket step gave {{ steps.ticket.output }}"}
"""


async def test_approved_run_deactivates_notifies_and_acknowledges(kit: Kit) -> None:
    kit.playbook("contain", CONTAIN)
    [rid] = kit.apply(change())
    await kit.drive()
    assert kit.run(rid).status == "waiting"
    assert kit.iam.calls["set_access_key_status"] == 0  # nothing happens before the decision
    [ask] = kit.slack.posts
    assert any(b.get("block_id") == "approval" for b in ask["blocks"])  # Approve / Deny buttons

    kit.command(Decision(run_id=rid, approved=True, by="alice", reason="confirmed leak"))
    await kit.drive()

    run, steps = kit.run(rid), kit.steps(rid)
    assert run.status == "completed"
    assert steps["approve"].output == {
        "approved": True,
        "decided_by": "alice",
        "reason": "confirmed leak",  # the analyst's words
    }
    assert kit.iam.keys[KEY].status == "Inactive"
    assert steps["deactivate"].output["previous_status"] == "Active"
    assert kit.slack.posts[-1]["text"].endswith("deactivated by alice")
    assert kit.slack.updates[0]["ts"] == ask["ts"]  # the request shows the decision now
    with Session(kit.db) as session:
        incident = get_incident(session, "inc-1")
        assert incident is not None and incident.status == "acknowledged"
    actions = [r.action for r in kit.audit() if r.subject == rid]
    assert actions[:2] == ["run.created", "run.started"]
    assert "approval.approved" in actions and actions[-1] == "run.completed"
    assert kit.chain_ok()


async def test_denied_approval_skips_the_side_effect_but_the_run_goes_on(kit: Kit) -> None:
    kit.playbook("contain", CONTAIN)
    [rid] = kit.apply(change())
    await kit.drive()
    kit.command(Decision(run_id=rid, approved=False, by="bob"))
    await kit.drive()
    steps = kit.steps(rid)
    assert steps["deactivate"].status == "skipped"
    assert kit.iam.keys[KEY].status == "Active"
    assert kit.slack.posts[-1]["text"].endswith("NOT deactivated by bob")
    assert kit.run(rid).status == "completed"


class Clock:
    """The runner's clock (`runs.now`), `ahead` of the wall clock: moved rather than waited
    for, as a loaded machine can take longer than a short timeout between two ticks."""

    def __init__(self) -> None:
        self.ahead = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.ahead


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved = Clock()
    monkeypatch.setattr(runs, "now", moved.now)
    return moved


async def test_approval_times_out_into_its_on_timeout_decision(kit: Kit, clock: Clock) -> None:
    kit.playbook("contain", CONTAIN)
    [rid] = kit.apply(change())
    await kit.drive()
    assert kit.run(rid).status == "waiting"
    clock.ahead = timedelta(minutes=59)
    await kit.drive()
    assert kit.run(rid).status == "waiting"
    clock.ahead = timedelta(hours=1, seconds=1)
    await kit.drive()
    assert kit.steps(rid)["approve"].output["decided_by"] == "timeout"
    assert kit.steps(rid)["deactivate"].status == "skipped"


async def test_a_run_whose_evidence_rows_changed_fails_without_acting(kit: Kit) -> None:
    """A run counts its incident's evidence rows (`runs.run_events`); rows missing below its
    count (or out of place) fail it before any step: it never acts on other events."""
    kit.playbook("auto", AUTOMATIC)
    [rid] = kit.apply(change())
    with Session(kit.db) as session, session.begin():
        session.execute(delete(IncidentEvent))
    await kit.drive()
    run = kit.run(rid)
    assert run.status == "failed" and "not as its change left them" in (run.error or "")
    assert kit.iam.calls["set_access_key_status"] == 0 and kit.steps(rid) == {}


async def test_a_decision_is_taken_once(kit: Kit) -> None:
    kit.playbook("contain", CONTAIN)
    [rid] = kit.apply(change())
    await kit.drive()
    kit.command(Decision(run_id=rid[:8], approved=True, by="alice"))
    with pytest.raises(DecisionError, match="already approved"):
        kit.command(Decision(run_id=rid, approved=False, by="mallory"))
    with pytest.raises(DecisionError, match="no playbook run"):
        kit.command(Decision(run_id="nope", approved=True, by="alice"))


async def test_redelivered_change_does_not_start_a_second_run(kit: Kit) -> None:
    kit.playbook("auto", AUTOMATIC)
    first = kit.apply(change())
    again = kit.apply(change())  # the sink skips the stored version; no planner call
    assert len(first) == 1 and again == []
    escalated = kit.apply(change(2, change_kind="escalated"))
    assert escalated == []  # `on.change` defaults to opened


async def test_retries_then_outputs_flow_and_secrets_are_masked(kit: Kit) -> None:
    kit.playbook("auto", AUTOMATIC)
    kit.iam.fail_next["set_access_key_status"] = [
        ActionError("throttled", retryable=True, code="unavailable")
    ]
    kit.http.respond("https://tickets.example/api", response(201, json={"id": "T-1"}))
    [rid] = kit.apply(change())
    await kit.drive()
    steps = kit.steps(rid)
    assert steps["deactivate"].attempts == 2
    assert kit.iam.calls["set_access_key_status"] == 2  # one failed, one done
    [sent] = kit.http.requests
    assert sent["json"] == {"key": KEY, "status": "Inactive"}
    assert sent["headers"]["Idempotency-Key"] == f"{rid}:ticket"
    assert "T-1" in kit.slack.posts[-1]["text"]
    assert steps["ticket"].params["headers"]["Authorization"] == "***"
    assert "t0ps3cret" not in str([r.data for r in kit.audit()])


async def test_on_error_continue_and_fail(kit: Kit) -> None:
    kit.playbook("auto", AUTOMATIC)
    kit.http.respond("https://tickets.example/api", response(400, body="bad"))
    [rid] = kit.apply(change())
    await kit.drive()
    steps = kit.steps(rid)
    assert steps["ticket"].status == "failed" and "400" in (steps["ticket"].error or "")
    assert steps["notify"].status == "completed"  # on_error: continue
    assert kit.run(rid).status == "completed"

    kit.iam.fail_next["set_access_key_status"] = [ActionError("denied", code="forbidden")]
    [rid2] = kit.apply(change(1, incident_id="inc-2"))
    kit.iam.keys[KEY] = kit.iam.keys[KEY].model_copy(update={"status": "Active"})
    kit.settings = PlaybookSettings(lease_s=30)
    runner = kit.runner()
    runner.playbooks.get("auto").guards.actions.clear()  # this test is about errors
    await kit.drive(runner)
    assert kit.run(rid2).status == "failed"
    assert kit.steps(rid2)["deactivate"].attempts == 1  # not retryable
    assert "notify" not in kit.steps(rid2)


async def test_action_guard_blocks_and_a_human_can_release_it(kit: Kit) -> None:
    kit.playbook("auto", AUTOMATIC)
    kit.http.respond("https://tickets.example/api", response(201, json={}))
    [first] = kit.apply(change())
    await kit.drive()
    [second] = kit.apply(change(1, incident_id="inc-2"))
    await kit.drive()
    assert kit.run(second).status == "blocked_by_guard"
    assert kit.steps(second)["deactivate"].status == "blocked_by_guard"
    assert kit.iam.calls["set_access_key_status"] == 1
    assert "limited to 1 per hour" in kit.slack.posts[-1]["text"]

    kit.command(Decision(run_id=second, approved=True, by="lead"))
    await kit.drive()
    assert kit.run(second).status == "completed"
    released = kit.steps(second)["deactivate"]
    assert (released.status, released.decided_by) == ("completed", "lead")
    assert released.output["previous_status"] == "Inactive"  # the first run already did it
    assert kit.run(first).status == "completed"


async def test_max_runs_per_hour_blocks_new_runs(kit: Kit) -> None:
    kit.playbook(
        "notify",
        """
        id: notify-only
        title: Tell
        on: {kind: credential_compromise}
        guards: {max_runs_per_hour: 2}
        steps:
          - {id: tell, action: slack.notify}
    """,
    )
    runs = [kit.apply(change(1, incident_id=f"inc-{i}"))[0] for i in range(3)]
    await kit.drive()
    assert [kit.run(r).status for r in runs] == ["completed", "completed", "blocked_by_guard"]
    kit.command(Decision(run_id=runs[2], approved=True, by="lead"))
    await kit.drive()
    assert kit.run(runs[2]).status == "completed"


async def test_dry_run_mode_and_kill_switch_plan_without_side_effects(kit: Kit) -> None:
    kit.playbook("auto", AUTOMATIC)
    kit.kill_switch = True
    [rid] = kit.apply(change())
    await kit.drive()
    run, steps = kit.run(rid), kit.steps(rid)
    assert (run.mode, run.status) == ("dry_run", "completed")
    assert {s.status for s in steps.values()} == {"planned"}
    assert steps["deactivate"].params == {"access_key_id": KEY, "user_name": "ci-bot"}
    assert kit.iam.calls.total() == 0 and kit.slack.calls == 0 and kit.http.requests == []


async def test_approval_mode_gates_every_side_effecting_step(kit: Kit) -> None:
    kit.playbook(
        "gated",
        """
        id: gated
        title: Gated
        on: {kind: credential_compromise}
        mode: approval
        guards: {require_evidence: false}
        steps:
          - id: deactivate
            action: aws.iam.deactivate_access_key
            with: {access_key_id: "{{ incident.group['resource.id'] }}", user_name: ci-bot}
          - {id: tell, action: slack.notify, with: {text: done}}
    """,
    )
    [rid] = kit.apply(change())
    await kit.drive()
    assert kit.steps(rid)["deactivate"].status == "waiting_approval"
    kit.command(Decision(run_id=rid, approved=True, by="alice"))
    await kit.drive()
    assert kit.iam.keys[KEY].status == "Inactive"
    assert kit.steps(rid)["tell"].status == "waiting_approval"
    kit.command(Decision(run_id=rid, step_id="tell", approved=False, by="alice"))
    await kit.drive()
    assert kit.steps(rid)["tell"].status == "denied"
    assert not [p for p in kit.slack.posts if p["text"] == "done"]
    assert kit.run(rid).status == "completed"


async def test_for_each_runs_per_item(kit: Kit) -> None:
    kit.playbook(
        "each",
        """
        id: each
        title: One ticket per event
        on: {kind: credential_compromise}
        steps:
          - id: tickets
            action: http.request
            for_each: "{{ events }}"
            with: {url: https://tickets.example/api, json: {event: "{{ item.id }}"}}
    """,
    )
    kit.http.respond("https://tickets.example/api", response(201, json={"ok": True}))
    from tests.support.runner_kit import event

    [rid] = kit.apply(change(events=[event("a", 1), event("b", 2)]))
    await kit.drive()
    assert [r["json"] for r in kit.http.requests] == [{"event": "a"}, {"event": "b"}]
    keys = [r["headers"]["Idempotency-Key"] for r in kit.http.requests]
    assert keys == [f"{rid}:tickets[0]", f"{rid}:tickets[1]"]
    assert len(kit.steps(rid)["tickets"].output) == 2


async def test_false_positive_undoes_completed_steps_newest_first(kit: Kit) -> None:
    kit.playbook("auto", AUTOMATIC)
    kit.http.respond("https://tickets.example/api", response(201, json={}))
    [rid] = kit.apply(change())
    await kit.drive()
    assert kit.iam.keys[KEY].status == "Inactive"

    result = kit.command(IncidentCommand(incident_id="inc-1", status="false_positive", by="carol"))
    assert result["undo_runs"] == [rid]
    await kit.drive()
    assert kit.iam.keys[KEY].status == "Active"
    steps = kit.steps(rid)
    assert steps["deactivate"].status == "undone"
    assert steps["deactivate"].undo_output["status"] == "Active"
    assert steps["notify"].status == "completed"  # no undo declared: left alone
    assert kit.run(rid).status == "undone"
    actions = [r.action for r in kit.audit()]
    assert "run.undo_requested" in actions and "step.undone" in actions
    assert kit.chain_ok()


async def test_a_new_worker_resumes_after_the_last_completed_step(kit: Kit, clock: Clock) -> None:
    """A worker that died mid-run: its lease expires, the next one goes on without repeating."""
    kit.playbook("auto", AUTOMATIC)
    kit.http.respond("https://tickets.example/api", response(201, json={}))
    kit.settings = PlaybookSettings(lease_s=30)
    [rid] = kit.apply(change())
    dying = kit.runner(owner="dying")

    class Crash(BaseException):
        pass

    async def crash(*args: object, **kwargs: object) -> object:
        raise Crash

    dying.ports.http.request = crash  # type: ignore[method-assign, union-attr]
    # it died: the lease is never released
    dying.journal.release = lambda session, rid: None  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await dying.tick()  # died inside step 2, after step 1 was recorded
    del kit.http.request  # the next worker's HTTP works again
    steps = kit.steps(rid)
    assert steps["deactivate"].status == "completed" and steps["ticket"].status == "running"
    assert await kit.runner(owner="other").tick() == 0  # the lease is still held
    clock.ahead = timedelta(seconds=31)
    await kit.drive(kit.runner(owner="other"))
    assert kit.run(rid).status == "completed"
    assert kit.iam.calls["set_access_key_status"] == 1  # step 1 exactly once
    assert len(kit.http.requests) == 1 and kit.steps(rid)["ticket"].attempts == 2


TWO_HOOKS = """
id: hooks
title: Two webhooks
on: {kind: credential_compromise}
steps:
  - {id: first, action: http.request, with: {url: https://hooks.example/first}, timeout: 10s}
  - {id: second, action: http.request, with: {url: https://hooks.example/second}}
"""


async def test_a_step_longer_than_the_lease_is_called_once_with_two_runners(kit: Kit) -> None:
    """The lease is renewed while a step runs: another runner ticking all along never claims
    the run, though the step takes two and a half times the lease."""
    kit.playbook("hooks", TWO_HOOKS)
    kit.settings = PlaybookSettings(lease_s=2)  # renewed every 2/3 s: slack for a busy machine
    [rid] = kit.apply(change())
    calls: list[str] = []
    answer = kit.http.request

    async def slow(**kwargs: Any) -> Any:
        calls.append(kwargs["url"])
        if kwargs["url"].endswith("/first"):
            await asyncio.sleep(5)
        return await answer(**kwargs)

    first, second = kit.runner(owner="first"), kit.runner(owner="second")
    first.ports.http.request = slow  # type: ignore[method-assign, union-attr]
    second.ports.http.request = slow  # type: ignore[method-assign, union-attr]
    working = asyncio.create_task(first.tick())
    while not calls:  # the first runner holds the run and is in its first step
        await asyncio.sleep(0.01)
    advanced_by_second = 0
    while not working.done():
        advanced_by_second += await second.tick()
        await asyncio.sleep(0.05)
    assert await working == 1 and advanced_by_second == 0
    assert calls == ["https://hooks.example/first", "https://hooks.example/second"]
    assert kit.run(rid).status == "completed"
    assert kit.steps(rid)["first"].attempts == 1


@pytest.mark.parametrize("playbook", [TWO_HOOKS, TWO_HOOKS.split("  - {id: second")[0]])
async def test_a_runner_whose_run_was_taken_over_starts_no_further_step(
    kit: Kit, playbook: str
) -> None:
    """A run claimed by another runner while this one's action was in flight (its lease ran
    out, the database away longer than it, say): the outcome of that action is recorded, and
    the rest is left to the new holder: the next step, or finishing the run."""
    kit.playbook("hooks", playbook)
    [rid] = kit.apply(change())
    calls: list[str] = []
    answer = kit.http.request

    async def taken_over(**kwargs: Any) -> Any:
        calls.append(kwargs["url"])
        with Session(kit.db) as session, session.begin():
            run = session.get(PlaybookRun, rid)
            assert run is not None and run.lease_owner == "first"
            run.lease_owner = "other"
        return await answer(**kwargs)

    runner = kit.runner(owner="first")
    runner.ports.http.request = taken_over  # type: ignore[method-assign, union-attr]
    assert await runner.tick() == 1
    assert calls == ["https://hooks.example/first"]
    steps = kit.steps(rid)
    assert steps["first"].status == "completed" and "second" not in steps
    run = kit.run(rid)
    assert (run.status, run.lease_owner) == ("running", "other")  # not released by "first"
    run_records = [r.action for r in kit.audit() if r.action.startswith("run.")]
    assert run_records == ["run.created", "run.started"]  # not finished by "first"


async def test_posted_incident_messages_are_redrawn_when_the_incident_changes(kit: Kit) -> None:
    kit.playbook(
        "tell",
        """
        id: tell
        title: Tell
        on: {kind: credential_compromise}
        steps:
          - {id: tell, action: slack.notify}
    """,
    )
    kit.apply(change())
    await kit.drive()
    [posted] = kit.slack.posts
    assert kit.slack.updates == []
    kit.apply(change(2, change_kind="escalated", severity="critical"))  # 2 events now
    await kit.drive()
    [update] = kit.slack.updates
    assert update["ts"] == posted["ts"]
    assert "2" in str(update["blocks"])  # the event count the message shows
    kit.command(IncidentCommand(incident_id="inc-1", status="resolved", by="erin"))
    await kit.drive()
    assert len(kit.slack.updates) == 2 and "resolved" in kit.slack.updates[-1]["text"]
    await kit.drive()
    assert len(kit.slack.updates) == 2  # nothing changed since: nothing redrawn


def slow_hook(kit: Kit, *, timeout: str, attempts: int) -> None:
    """A playbook of one webhook step `hook`, with this timeout and these attempts."""
    kit.playbook(
        "slow",
        f"""
        id: slow
        title: Slow webhook
        on: {{kind: credential_compromise}}
        steps:
          - id: hook
            action: http.request
            with: {{url: https://hooks.example/x}}
            timeout: {timeout}
            retry: {{attempts: {attempts}, backoff: 10ms}}
    """,
    )


async def test_a_step_timeout_is_retried_then_fails_the_run(kit: Kit) -> None:
    slow_hook(kit, timeout="100ms", attempts=2)

    async def hang(**kwargs: object) -> object:
        await asyncio.sleep(5)
        raise AssertionError("not reached")

    kit.http.request = hang  # type: ignore[method-assign, assignment]
    [rid] = kit.apply(change())
    await kit.drive()
    hook = kit.steps(rid)["hook"]
    assert (hook.status, hook.attempts) == ("failed", 2)
    assert "timed out" in (hook.error or "")
    assert kit.run(rid).status == "failed"


async def test_a_runner_stopping_is_not_a_failure_of_the_action_it_was_running(kit: Kit) -> None:
    """An action (or its library) that turns the runner's cancellation into an error of its
    own: the runner stops (the step is not retried nor failed), as it did when each call ran
    in a task of its own (`asyncio.wait_for`)."""
    slow_hook(kit, timeout="30s", attempts=3)
    calls = 0

    async def hang(**kwargs: object) -> object:
        nonlocal calls
        calls += 1
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            raise RuntimeError("connection aborted") from None
        raise AssertionError("not reached")

    kit.http.request = hang  # type: ignore[method-assign, assignment]
    [rid] = kit.apply(change())
    ticking = asyncio.ensure_future(kit.runner().tick())
    async with asyncio.timeout(10):
        while not calls:
            await asyncio.sleep(0.01)
    ticking.cancel()
    await asyncio.wait([ticking], timeout=10)
    assert ticking.cancelled() and calls == 1
    hook = kit.steps(rid)["hook"]
    assert hook.status != "failed" and kit.run(rid).status not in ("failed", "completed")


async def test_runs_advance_concurrently(kit: Kit) -> None:
    """Two runs that can only finish together (each waits for the other's action to start):
    a runner that advanced one run at a time would time both out."""
    kit.playbook(
        "hook",
        """
        id: hook
        title: Hook
        on: {kind: credential_compromise}
        steps:
          - {id: call, action: http.request, with: {url: https://hooks.example/x}, timeout: 2s}
    """,
    )
    kit.playbook(
        "tell",
        """
        id: tell
        title: Tell
        on: {kind: credential_compromise}
        steps:
          - {id: post, action: slack.notify, timeout: 2s}
    """,
    )
    started = {"hook": asyncio.Event(), "tell": asyncio.Event()}
    post = kit.slack.post_message

    async def call(**kwargs: object) -> object:
        started["hook"].set()
        await started["tell"].wait()
        return response(200, json={"ok": True})

    async def tell(**kwargs: Any) -> Any:
        started["tell"].set()
        await started["hook"].wait()
        return await post(**kwargs)

    kit.http.request = call  # type: ignore[method-assign, assignment]
    kit.slack.post_message = tell  # type: ignore[method-assign]
    runs = kit.apply(change())
    await kit.drive()
    assert sorted(kit.run(r).status for r in runs) == ["completed", "completed"]


async def test_kill_switch_stops_runs_already_under_way(kit: Kit) -> None:
    kit.playbook("contain", CONTAIN)
    [rid] = kit.apply(change())  # created while the switch was off: an automatic run
    await kit.drive()
    kit.command(Decision(run_id=rid, approved=True, by="alice"))
    kit.settings = PlaybookSettings(lease_s=30, kill_switch=True)
    await kit.drive(kit.runner())
    steps = kit.steps(rid)
    assert steps["approve"].status == "completed"  # decided before the switch
    assert {steps[s].status for s in ("deactivate", "notify", "ack")} == {"planned"}
    assert steps["deactivate"].error == "kill switch on: planned, not run"
    assert kit.iam.calls["set_access_key_status"] == 0
    assert kit.run(rid).status == "completed"


async def test_live_kill_switch_needs_no_restart(kit: Kit) -> None:
    from responder.commands import KillSwitch

    kit.playbook("auto", AUTOMATIC)
    kit.http.respond("https://tickets.example/api", response(201, json={}))
    runner = kit.runner()  # started with the setting off
    assert kit.command(KillSwitch(on=True, by="oncall", reason="bad rule")) == {
        "kill_switch": True,
        "was": False,
    }
    [rid] = kit.apply(change())
    await kit.drive(runner)
    assert kit.run(rid).mode == "dry_run"  # created while the switch was on
    assert kit.iam.calls.total() == 0 and kit.http.requests == []

    kit.command(KillSwitch(on=False, by="oncall"))
    [live] = kit.apply(change(1, incident_id="inc-2"))
    await kit.drive(runner)
    assert kit.run(live).status == "completed" and kit.iam.calls["set_access_key_status"] == 1
    switched = [r.action for r in kit.audit() if r.subject == "kill_switch"]
    assert switched == ["kill_switch.on", "kill_switch.off"]


async def test_incidents_show_lists_the_runs_and_comments(
    kit: Kit, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from responder.cli import app

    kit.playbook("contain", CONTAIN)
    [rid] = kit.apply(change())
    await kit.drive()
    kit.command(Decision(run_id=rid, approved=True, by="alice"))
    await kit.drive()
    monkeypatch.setenv("RESPONDER_DATABASE__URL", db_url)
    shown = CliRunner().invoke(app, ["incidents", "show", "inc-1", "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["runs"] == [
        {"id": rid, "playbook": "contain", "mode": "automatic", "status": "completed"}
    ]
    assert data["status"] == "acknowledged"
    assert data["comments"][0]["text"] == "run contain"
    text = CliRunner().invoke(app, ["incidents", "show", "inc-1"], env={"COLUMNS": "200"})
    assert "playbook runs" in text.stdout and rid[:8] in text.stdout


async def test_a_for_each_step_that_failed_midway_is_undone_for_the_items_that_took_effect(
    kit: Kit,
) -> None:
    """Two keys deactivated, the third missing: the step fails (on_error: continue); the
    false positive reactivates exactly the two, the undo naming each by `{{ item }}`."""
    kit.iam.add_key("AKIAEXAMPLE000000002", user_name="ci-bot")
    keys = [KEY, "AKIAEXAMPLE000000002", "AKIAEXAMPLE00000GONE"]
    kit.playbook(
        "contain",
        f"""
        id: contain-many
        title: Deactivate every key
        on: {{kind: credential_compromise}}
        guards: {{require_evidence: false}}
        steps:
          - id: deactivate
            action: aws.iam.deactivate_access_key
            for_each: "{{{{ {keys!r} }}}}"
            with: {{access_key_id: "{{{{ item }}}}"}}
            on_error: continue
            undo:
              action: aws.iam.activate_access_key
              with: {{access_key_id: "{{{{ item }}}}"}}
    """,
    )
    [rid] = kit.apply(change(1))
    await kit.drive()
    assert kit.run(rid).status == "completed"
    step = kit.steps(rid)["deactivate"]
    assert step.status == "failed" and "GONE" in (step.error or "")
    assert [o["access_key_id"] for o in step.output] == keys[:2]
    assert {kit.iam.keys[k].status for k in keys[:2]} == {"Inactive"}

    kit.command(IncidentCommand(incident_id="inc-1", status="false_positive", by="carol"))
    await kit.drive()
    assert kit.run(rid).status == "undone"
    assert kit.steps(rid)["deactivate"].status == "undone"
    assert {kit.iam.keys[k].status for k in keys[:2]} == {"Active"}
    assert kit.chain_ok()
