"""The runner's step rules on plain values: no database, no actions, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from responder.actions.registry import ActionError
from responder.playbooks import step_rules as rules
from responder.playbooks.quorum import Policy
from responder.playbooks.schema import Playbook, Step

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
DEFAULT_TIMEOUT = timedelta(minutes=30)
CONTEXT: dict[str, Any] = {
    "incident": {"id": "inc-1", "group": {"resource.id": "AKIA1"}},
    "events": [{"id": "e1"}, {"id": "e2"}],
    "steps": {"approve": {"output": {"approved": True}}},
}


def playbook(*steps: dict[str, Any], **fields: Any) -> Playbook:
    return Playbook.model_validate(
        {"id": "p", "title": "P", "on": {"kind": "x"}, "steps": list(steps), **fields}
    )


def step(**fields: Any) -> Step:
    return Step.model_validate({"id": "act", "action": "test.disable", **fields})


def facts(**fields: Any) -> rules.StepFacts:
    values: dict[str, Any] = {
        "mode": "automatic",
        "side_effect": True,
        "now": NOW,
        "approval_timeout": DEFAULT_TIMEOUT,
    }
    return rules.StepFacts(**{**values, **fields})


def decided(s: Step, pb: Playbook | None = None, **fact_fields: Any) -> Any:
    return rules.decide(
        pb or playbook(s.model_dump(by_alias=True)), s, facts(**fact_fields), CONTEXT
    )


APPROVE: dict[str, Any] = {
    "id": "approve",
    "action": "approval.request",
    "with": {"prompt": "Deactivate {{ incident.group['resource.id'] }}?", "timeout": "1h"},
}


# --- steps already reached ----------------------------------------------------------------------


def test_a_finished_step_is_not_run_again() -> None:
    """A step recorded as completed hands back its output instead of running again."""
    done = rules.Recorded(status="completed", output={"ok": 1})
    assert decided(step(), recorded=done) == rules.Finished({"ok": 1})


@pytest.mark.parametrize("status", ["failed", "skipped", "planned", "denied", "undone"])
def test_every_final_step_status_counts_as_finished(status: str) -> None:
    """Failed, skipped, planned, denied and undone steps are all past: none runs again."""
    assert rules.Recorded(status=status).finished
    assert isinstance(decided(step(), recorded=rules.Recorded(status=status)), rules.Finished)


@pytest.mark.parametrize("status", ["running", "waiting_approval", "blocked_by_guard"])
def test_unfinished_step_statuses(status: str) -> None:
    """Running, waiting and blocked steps still have to happen."""
    assert not rules.Recorded(status=status).finished


# --- if -----------------------------------------------------------------------------------------


def test_a_false_if_skips_a_fresh_step() -> None:
    """An `if` that renders false skips the step the first time it is reached."""
    assert decided(step(**{"if": "{{ not steps.approve.output.approved }}"})) == rules.Skip(
        "if was false"
    )


def test_a_true_if_lets_the_step_run() -> None:
    """An `if` that renders true goes on to the action."""
    assert isinstance(decided(step(**{"if": "{{ steps.approve.output.approved }}"})), rules.Execute)


def test_the_if_is_not_evaluated_again_once_the_step_was_reached() -> None:
    """A step interrupted mid-call runs again even if its `if` would now be false."""
    s = step(**{"if": "{{ false }}"})
    assert isinstance(decided(s, recorded=rules.Recorded(status="running")), rules.Execute)


def test_an_if_that_cannot_render_fails_the_step() -> None:
    """A broken `if` fails the step, and the run unless the step says on_error: continue."""
    fail = decided(step(**{"if": "{{ nope.x }}"}))
    assert isinstance(fail, rules.Fail) and fail.stops_run and "nope" in fail.reason
    go_on = decided(step(**{"if": "{{ nope.x }}", "on_error": "continue"}))
    assert isinstance(go_on, rules.Fail) and not go_on.stops_run


# --- approval steps -----------------------------------------------------------------------------


def test_a_new_approval_asks_with_its_own_deadline() -> None:
    """A fresh approval step asks (rendered prompt) and waits until its timeout."""
    s = Step.model_validate(APPROVE)
    assert decided(s, side_effect=False) == rules.Wait(
        "Deactivate AKIA1?", NOW + timedelta(hours=1), ask=True
    )


def test_an_approval_without_timeout_uses_the_default() -> None:
    """Without `timeout`, the approval waits for the playbooks.approval_timeout_s setting."""
    s = Step.model_validate({**APPROVE, "with": {"prompt": "Go?"}})
    assert decided(s, side_effect=False) == rules.Wait("Go?", NOW + DEFAULT_TIMEOUT, ask=True)


def test_a_waiting_approval_keeps_its_deadline_and_does_not_ask_again() -> None:
    """Woken before its deadline, an approval parks again without a second request."""
    deadline = NOW + timedelta(minutes=5)
    waiting = rules.Recorded(status="waiting_approval", deadline=deadline)
    s = Step.model_validate(APPROVE)
    assert decided(s, recorded=waiting) == rules.Wait("Deactivate AKIA1?", deadline, ask=False)


def test_an_approval_past_its_deadline_takes_its_on_timeout_answer() -> None:
    """After the deadline, `on_timeout` answers (deny by default), decided by `timeout`."""
    waiting = rules.Recorded(status="waiting_approval", deadline=NOW)
    s = Step.model_validate(APPROVE)
    assert decided(s, recorded=waiting) == rules.Answered(
        {"approved": False, "decided_by": "timeout", "reason": "timed out"}
    )
    approving = Step.model_validate(
        {**APPROVE, "with": {**APPROVE["with"], "on_timeout": "approve"}}
    )
    answer = decided(approving, recorded=waiting)
    assert isinstance(answer, rules.Answered) and answer.output["approved"] is True


def test_a_human_answer_carries_who_and_why() -> None:
    """A recorded decision answers the approval with the analyst and their reason."""
    s = Step.model_validate(APPROVE)
    given = rules.Recorded(
        status="waiting_approval", decision="approved", decided_by="alice", reason="leak"
    )
    assert decided(s, recorded=given) == rules.Answered(
        {"approved": True, "decided_by": "alice", "reason": "leak"}
    )
    denied = rules.Recorded(status="waiting_approval", decision="denied")
    assert decided(s, recorded=denied) == rules.Answered(
        {"approved": False, "decided_by": "unknown", "reason": "denied"}
    )


def test_bad_approval_parameters_fail_the_step() -> None:
    """An approval whose rendered parameters do not validate fails instead of waiting."""
    s = Step.model_validate({**APPROVE, "with": {"prompt": "Go?", "timeout": "{{ 'soon' }}"}})
    fail = decided(s)
    assert isinstance(fail, rules.Fail) and fail.reason.startswith("approval parameters:")


def test_the_kill_switch_does_not_skip_approval_steps() -> None:
    """Approvals are not side effects: under the kill switch they still ask."""
    s = Step.model_validate(APPROVE)
    assert isinstance(decided(s, killed=True, side_effect=False), rules.Wait)


# --- kill switch and approval mode --------------------------------------------------------------


def test_the_kill_switch_plans_side_effects_instead_of_running_them() -> None:
    """With the kill switch on, a side-effecting step is recorded as planned, not run."""
    assert decided(step(), killed=True) == rules.Plan("kill switch on: planned, not run")


def test_the_kill_switch_lets_harmless_steps_run() -> None:
    """Steps without side effects (a notification) still run under the kill switch."""
    assert isinstance(decided(step(), killed=True, side_effect=False), rules.Execute)


def test_approval_mode_asks_before_each_side_effect() -> None:
    """In approval mode a side-effecting step waits for a human, without a deadline."""
    assert decided(step(), mode="approval") == rules.Wait(
        "Run step act (test.disable) of playbook p?", None, ask=True
    )


def test_approval_mode_lets_harmless_steps_run() -> None:
    """In approval mode a step without side effects runs without asking."""
    assert isinstance(decided(step(), mode="approval", side_effect=False), rules.Execute)


def test_an_approved_step_runs_and_a_denied_one_does_not() -> None:
    """The human's decision on a waiting step: approved runs it, denied records a denial."""
    approved = rules.Recorded(status="waiting_approval", decision="approved", decided_by="ana")
    assert isinstance(decided(step(), mode="approval", recorded=approved), rules.Execute)
    denied = rules.Recorded(status="waiting_approval", decision="denied", decided_by="ana")
    assert decided(step(), mode="approval", recorded=denied) == rules.Deny()


# --- guards -------------------------------------------------------------------------------------

GUARDED = {"actions": {"test.disable": {"per_hour": 2}}}


def test_a_guard_blocks_the_step_once_its_limit_is_reached() -> None:
    """At the hourly limit the step is blocked and a human is asked to release it."""
    s = step()
    pb = playbook(s.model_dump(by_alias=True), guards=GUARDED)
    assert rules.needs_uses(pb, s, None)
    assert decided(s, pb, uses_last_hour=2) == rules.Block(
        "guard: test.disable limited to 2 per hour",
        "guard: test.disable limited to 2 per hour. Approve to run step act anyway.",
    )


def test_under_its_limit_a_guarded_step_runs() -> None:
    """Below the hourly limit the guarded step runs."""
    s = step()
    pb = playbook(s.model_dump(by_alias=True), guards=GUARDED)
    assert isinstance(decided(s, pb, uses_last_hour=1), rules.Execute)


def test_a_human_releases_a_blocked_step() -> None:
    """A blocked step that a human approved runs whatever the count; no count is needed."""
    s = step()
    pb = playbook(s.model_dump(by_alias=True), guards=GUARDED)
    released = rules.Recorded(status="blocked_by_guard", decision="approved", decided_by="ana")
    assert not rules.needs_uses(pb, s, released)
    assert isinstance(decided(s, pb, recorded=released), rules.Execute)


def test_a_guarded_step_cannot_be_decided_without_its_count() -> None:
    """Deciding a guarded step without the usage count is the caller's bug, not a pass."""
    s = step()
    pb = playbook(s.model_dump(by_alias=True), guards=GUARDED)
    with pytest.raises(ValueError, match="uses"):
        decided(s, pb)


def test_unguarded_actions_need_no_count() -> None:
    """Without a guard on the action no usage count is asked for."""
    s = step()
    assert not rules.needs_uses(playbook(s.model_dump(by_alias=True)), s, None)


# --- the evidence guard -------------------------------------------------------------------------

EVIDENCE = {"require_evidence": True}


def test_without_a_snapshot_a_side_effect_of_an_evidence_playbook_is_blocked() -> None:
    """require_evidence blocks a side-effecting step while no snapshot of the incident exists."""
    s = step()
    pb = playbook(s.model_dump(by_alias=True), guards=EVIDENCE)
    assert rules.needs_evidence(pb, side_effect=True)
    blocked = decided(s, pb, evidence_recorded=False)
    assert isinstance(blocked, rules.Block)
    assert blocked.reason == "guard: no evidence snapshot of the incident yet (require_evidence)"
    assert "responder evidence snapshot inc-1" in blocked.prompt


def test_with_a_snapshot_the_side_effect_runs() -> None:
    """Once a snapshot of the incident is recorded the step runs."""
    s = step()
    pb = playbook(s.model_dump(by_alias=True), guards=EVIDENCE)
    assert isinstance(decided(s, pb, evidence_recorded=True), rules.Execute)


def test_an_approval_does_not_release_the_evidence_guard() -> None:
    """A human's approval of the blocked step is not a snapshot: still blocked."""
    s = step()
    pb = playbook(s.model_dump(by_alias=True), guards=EVIDENCE)
    approved = rules.Recorded(status="blocked_by_guard", decision="approved", decided_by="ana")
    assert isinstance(decided(s, pb, recorded=approved, evidence_recorded=False), rules.Block)
    assert isinstance(decided(s, pb, recorded=approved, evidence_recorded=True), rules.Execute)


def test_harmless_steps_run_before_the_snapshot() -> None:
    """Steps without side effects (the snapshot itself) are not held by the evidence guard."""
    s = step()
    pb = playbook(s.model_dump(by_alias=True), guards=EVIDENCE)
    assert not rules.needs_evidence(pb, side_effect=False)
    assert isinstance(decided(s, pb, side_effect=False), rules.Execute)


def test_the_kill_switch_and_a_denial_come_before_the_evidence_guard() -> None:
    """Under the kill switch the step is planned; a denied step is denied, not blocked."""
    s = step()
    pb = playbook(s.model_dump(by_alias=True), guards=EVIDENCE)
    assert isinstance(decided(s, pb, killed=True, evidence_recorded=False), rules.Plan)
    denied = rules.Recorded(status="waiting_approval", decision="denied", decided_by="ana")
    assert decided(s, pb, recorded=denied, evidence_recorded=False) == rules.Deny()


def test_an_evidence_step_cannot_be_decided_without_the_fact() -> None:
    """Deciding a guarded step without knowing whether evidence exists is the caller's bug."""
    s = step()
    pb = playbook(s.model_dump(by_alias=True), guards=EVIDENCE)
    with pytest.raises(ValueError, match="evidence"):
        decided(s, pb)


@pytest.mark.parametrize(
    ("action", "required"),
    [
        ("mlflow.rollback_model", True),
        ("mlflow.set_model_alias", True),
        ("aws.iam.deactivate_access_key", True),
        ("aws.iam.delete_access_key", True),
        ("slack.notify", False),
        ("http.request", False),
    ],
)
def test_evidence_is_required_by_default_for_model_and_iam_changes(
    action: str, required: bool
) -> None:
    """Playbooks using MLflow alias moves or aws.iam.* require evidence unless they opt out."""
    pb = playbook({"id": "s", "action": action})
    assert pb.requires_evidence is required
    assert not playbook(
        {"id": "s", "action": action}, guards={"require_evidence": False}
    ).requires_evidence
    assert playbook({"id": "s", "action": action}, guards=EVIDENCE).requires_evidence


def test_an_approval_step_waits_with_its_approvers_and_quorum() -> None:
    """The step's own approvers and quorum travel with the Wait (rendered, so templates work)."""
    s = Step.model_validate(
        {
            **APPROVE,
            "with": {
                **APPROVE["with"],
                "approvers": ["U1", "group:secops"],
                "quorum": "{{ 2 if events | length > 1 else 1 }}",
            },
        }
    )
    wait = decided(s)
    assert isinstance(wait, rules.Wait) and wait.policy == Policy(("U1", "group:secops"), 2)


def test_guard_blocks_and_approval_mode_ask_the_guards_approvers() -> None:
    """`guards.approval` names who releases a guard's block or an approval-mode step."""
    s = step()
    guards = {**GUARDED, "approval": {"approvers": ["group:secops"], "quorum": 2}}
    pb = playbook(s.model_dump(by_alias=True), guards=guards)
    block = decided(s, pb, uses_last_hour=2)
    assert isinstance(block, rules.Block) and block.policy == Policy(("group:secops",), 2)
    wait = decided(s, pb, mode="approval", uses_last_hour=0)
    assert isinstance(wait, rules.Wait) and wait.policy == Policy(("group:secops",), 2)


def test_a_for_each_over_the_guards_limit_is_blocked_until_released() -> None:
    """More items than `for_each_over` blocks the step; once approved it runs every item."""
    s = step(for_each="{{ events }}")
    pb = playbook(s.model_dump(by_alias=True), guards={"for_each_over": 1})
    block = decided(s, pb)
    assert isinstance(block, rules.Block)
    assert block.reason == "guard: 2 items, more than for_each_over=1"
    released = rules.Recorded(status="blocked_by_guard", decision="approved", decided_by="ana")
    execute = decided(s, pb, recorded=released)
    assert isinstance(execute, rules.Execute) and len(execute.calls) == 2
    at_limit = playbook(s.model_dump(by_alias=True), guards={"for_each_over": 2})
    assert isinstance(decided(s, at_limit), rules.Execute)


def test_an_unreachable_quorum_is_refused_when_the_playbook_loads() -> None:
    """Two approvals from one named approver can never happen: the playbook does not load."""
    with pytest.raises(ValueError, match="cannot be reached"):
        playbook(
            step().model_dump(by_alias=True),
            guards={"approval": {"approvers": ["U1"], "quorum": 2}},
        )


# --- executing ----------------------------------------------------------------------------------


def test_a_plain_step_is_one_call_keyed_by_its_id() -> None:
    """One call of the step's action with its templates, keyed by the step id."""
    s = step(**{"with": {"key_id": "{{ incident.id }}"}})
    assert decided(s) == rules.Execute(
        (rules.Call("test.disable", {"key_id": "{{ incident.id }}"}, CONTEXT, "act"),)
    )


def test_for_each_calls_once_per_item() -> None:
    """A for_each step is one call per item, each with `item` set and its own key."""
    execute = decided(step(for_each="{{ events }}"))
    assert isinstance(execute, rules.Execute) and execute.each
    assert [c.key for c in execute.calls] == ["act[0]", "act[1]"]
    assert [c.context["item"] for c in execute.calls] == CONTEXT["events"]


def test_for_each_over_nothing_is_no_call() -> None:
    """An empty for_each list runs nothing (and the output is an empty list)."""
    assert decided(step(for_each="{{ [] }}")) == rules.Execute((), each=True)


def test_for_each_that_is_not_a_list_fails() -> None:
    """A for_each that renders anything but a list fails the step."""
    fail = decided(step(for_each="{{ incident }}"))
    assert isinstance(fail, rules.Fail) and fail.reason == "for_each must render a list, got dict"


# --- retries ------------------------------------------------------------------------------------

RETRYING = {"attempts": 3, "backoff": "2s", "max_backoff": "3s"}


def test_a_retryable_error_is_retried_with_backoff() -> None:
    """A retryable failure waits the backoff (doubling, capped) while attempts remain."""
    s = step(retry=RETRYING)
    error = ActionError("throttled", retryable=True)
    assert rules.after_failure(s, 1, error) == rules.Retry(timedelta(seconds=2))
    assert rules.after_failure(s, 2, error) == rules.Retry(timedelta(seconds=3))


def test_the_last_attempt_fails_the_step() -> None:
    """When the attempts are used up the step fails, saying how many there were."""
    fail = rules.after_failure(step(retry=RETRYING), 3, ActionError("throttled", retryable=True))
    assert fail == rules.Fail("ActionError: throttled", stops_run=True, attempts=3)


def test_a_non_retryable_error_fails_at_once() -> None:
    """An error the policy does not retry fails the step on the first attempt."""
    fail = rules.after_failure(step(retry=RETRYING), 1, ActionError("forbidden"))
    assert isinstance(fail, rules.Fail) and fail.attempts == 1


def test_a_step_timeout_is_retried_then_reported_as_timed_out() -> None:
    """A timeout is worth another attempt; the last one fails as `timed out`."""
    s = step(retry={"attempts": 2})
    assert isinstance(rules.after_failure(s, 1, TimeoutError()), rules.Retry)
    assert rules.after_failure(s, 2, TimeoutError()) == rules.Fail(
        "TimeoutError: timed out", stops_run=True, attempts=2
    )


# --- undo ---------------------------------------------------------------------------------------

UNDO: dict[str, Any] = {
    "action": "test.enable",
    "with": {"key_id": "{{ steps.act.output.key_id }}"},
}


def test_undo_runs_newest_first_over_completed_steps_only() -> None:
    """Only completed steps with an undo are compensated, the newest first."""
    pb = playbook(
        {"id": "a", "action": "test.disable", "undo": UNDO},
        {"id": "b", "action": "test.notify"},
        {"id": "c", "action": "test.disable", "undo": UNDO},
        {"id": "d", "action": "test.disable", "undo": UNDO},
    )
    recorded = {
        "a": rules.Recorded(status="completed"),
        "b": rules.Recorded(status="completed"),
        "c": rules.Recorded(status="completed"),
        "d": rules.Recorded(status="failed"),
    }
    assert [(i, s.id) for i, s in rules.undo_order(pb, recorded)] == [(2, "c"), (0, "a")]


def test_undo_of_a_plain_step_is_one_call() -> None:
    """The undo of a plain step calls the undo action once, keyed `<id>.undo`."""
    s = step(undo=UNDO)
    assert rules.undo_calls(s, {"key_id": "K"}, CONTEXT) == rules.Execute(
        (rules.Call("test.enable", UNDO["with"], CONTEXT, "act.undo"),)
    )


def test_undo_of_a_for_each_step_sees_each_item_output() -> None:
    """A for_each step is undone per item, each seeing that item's output as its own."""
    s = step(for_each="{{ events }}", undo=UNDO)
    execute = rules.undo_calls(s, [{"key_id": "K1"}, {"key_id": "K2"}], CONTEXT)
    assert execute.each and [c.key for c in execute.calls] == ["act[0].undo", "act[1].undo"]
    outputs = [c.context["steps"]["act"]["output"] for c in execute.calls]
    assert outputs == [{"key_id": "K1"}, {"key_id": "K2"}]
    assert CONTEXT["steps"] == {"approve": {"output": {"approved": True}}}  # not mutated
    assert [c.context["item"] for c in execute.calls] == [{"id": "e1"}, {"id": "e2"}]


def test_a_for_each_step_that_failed_midway_undoes_the_items_that_took_effect() -> None:
    """A failed for_each step whose output lists the items done before the failure is
    compensated for those items, each with its `item`; one that failed at its first is not."""
    pb = playbook(
        {"id": "a", "action": "test.disable", "for_each": "{{ events }}", "undo": UNDO},
        {"id": "b", "action": "test.disable", "for_each": "{{ events }}", "undo": UNDO},
        {"id": "c", "action": "test.disable", "undo": UNDO},
    )
    recorded = {
        "a": rules.Recorded(status="failed", output=[{"key_id": "K1"}]),
        "b": rules.Recorded(status="failed", output=None),
        "c": rules.Recorded(status="failed", output=[{"key_id": "K9"}]),  # not a for_each step
    }
    [(position, undone)] = rules.undo_order(pb, recorded)
    assert (position, undone.id) == (0, "a")
    execute = rules.undo_calls(undone, recorded["a"].output, CONTEXT)
    assert [c.key for c in execute.calls] == ["a[0].undo"]
    assert execute.calls[0].context["item"] == {"id": "e1"}
    broken = step(for_each="{{ nothing.here }}", undo=UNDO)
    assert rules.undo_calls(broken, [{"key_id": "K1"}], CONTEXT).calls[0].context["item"] is None


def test_a_step_without_undo_has_nothing_to_undo() -> None:
    """No undo, no calls."""
    assert rules.undo_calls(step(), {"ok": 1}, CONTEXT) == rules.Execute(())
