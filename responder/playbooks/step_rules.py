"""What happens next to a step of a run: the runner's rules, as pure functions.

Plain values in (the playbook and step, what the journal recorded about the step, the run's mode,
the kill switch, the clock, how often a guarded action ran), a small frozen decision out. The
runner (`runner.py`) applies each decision through the journal and the action ports; it decides
nothing itself, so these rules are tested without a database (tests/unit/test_step_decision.py).

`decide` applies the rules in this order:

1. a step recorded as finished (or denied) is not run again: `Finished(output)`;
2. its `if` is rendered once, when the step is first reached: false → `Skip`;
3. an `approval.request` step is answered by the recorded decision, or by its `on_timeout` once
   the deadline passed (`Answered`), else it waits (`Wait`);
4. under the kill switch a side-effecting step is recorded, not run (`Plan`);
5. a step a human denied is not run (`Deny`);
6. in a playbook that requires evidence (`Playbook.requires_evidence`), a side-effecting step is
   blocked while no evidence snapshot of the incident exists (`Block`); a human's approval does
   not release it, a snapshot does (the approval then lets the step run);
7. in `approval` mode a side-effecting step waits for a human (`Wait`);
8. a guard (`guards.actions.<action>.per_hour`) that is reached blocks the step until a human
   approves it (`Block`);
9. otherwise the action runs once, or once per `for_each` item (`Execute`), unless there are more
   items than `guards.for_each_over`: then the step is blocked first (`Block`).

Who may answer a `Wait` or a `Block`, and how many must approve, is its `Policy`
(`quorum.py`): the approval step's own `approvers` / `quorum`, else the playbook's
`guards.approval`. The votes are counted where decisions are applied (`decisions.py`); the
rules only read the outcome (`Recorded.decision`).

An attempt that fails is tried again while the step's retry policy allows it (`after_failure` →
`Retry`), else the step fails (`Fail`), which fails the run unless `on_error: continue`. On a
false positive, `undo_order` says which steps to compensate, newest first, and `undo_calls` how.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from responder.actions.approval import APPROVAL_ACTION, ApprovalRequest
from responder.playbooks.quorum import ANYONE, Policy
from responder.playbooks.schema import Mode, Playbook, Step
from responder.playbooks.statuses import (
    FINISHED_STEPS,
    STEP_BLOCKED,
    STEP_DENIED,
    STEP_DONE,
    STEP_FAILED,
)
from responder.playbooks.templating import TemplateError, render, truthy
from responder.text.duration import parse_duration

# --- what the rules read --------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """What the journal holds about a step (its `StepRun` row), as plain values."""

    status: str
    output: Any = None
    decision: str | None = None  # a human's: "approved" / "denied"
    decided_by: str | None = None
    reason: str | None = None  # the reason the human gave, if any
    deadline: datetime | None = None  # timezone-aware

    @property
    def finished(self) -> bool:
        """Done with, one way or another: a resumed run takes its output and goes on."""
        return self.status in FINISHED_STEPS or self.status == STEP_DENIED


@dataclass(frozen=True)
class StepFacts:
    """The run around a step, as the runner found it just before deciding."""

    mode: Mode  # the run's mode (a dry run is planned as a whole, never stepped)
    side_effect: bool  # the step's action changes something outside responder
    now: datetime
    approval_timeout: timedelta  # for approval steps without their own `timeout`
    recorded: Recorded | None = None  # None: the step was never reached before
    killed: bool = False  # the kill switch is on
    uses_last_hour: int | None = None  # runs of the action in the last hour (`needs_uses`)
    evidence_recorded: bool | None = None  # a snapshot of the incident exists (`needs_evidence`)


# --- the decisions --------------------------------------------------------------------------


@dataclass(frozen=True)
class Finished:
    """Recorded as finished earlier: its output counts, the step is not run again."""

    output: Any


@dataclass(frozen=True)
class Skip:
    """Not run, recorded as skipped (its output is None)."""

    reason: str


@dataclass(frozen=True)
class Plan:
    """Recorded as planned with its parameters, not run (the kill switch is on)."""

    note: str


@dataclass(frozen=True)
class Deny:
    """A human denied the step: recorded as denied, not run; the run goes on."""


@dataclass(frozen=True)
class Wait:
    """The run waits for a human; `ask` when the request is new (post it, record the step)."""

    prompt: str
    deadline: datetime | None  # None: only a decision wakes the run
    ask: bool
    policy: Policy = ANYONE


@dataclass(frozen=True)
class Block:
    """A guard stopped the step: the run is blocked until a human approves the step."""

    reason: str
    prompt: str
    policy: Policy = ANYONE


@dataclass(frozen=True)
class Answered:
    """An approval step has its answer: recorded as completed with this output."""

    output: dict[str, Any]


@dataclass(frozen=True)
class Call:
    """One call of an action: the step's own, or its undo's."""

    action: str
    with_: Mapping[str, Any]  # the parameters, still templates
    context: Mapping[str, Any]  # what they see (`item` set inside `for_each`)
    key: str  # the step's part of the idempotency key: `id`, `id[2]`, `id.undo`, `id[2].undo`


@dataclass(frozen=True)
class Execute:
    """Run the action: once, or once per `for_each` item (`each`: the output is their list)."""

    calls: tuple[Call, ...]
    each: bool = False


@dataclass(frozen=True)
class Retry:
    """Try the call again after a pause."""

    after: timedelta


@dataclass(frozen=True)
class Fail:
    """The step failed; it fails the run too unless the step says `on_error: continue`."""

    reason: str
    stops_run: bool
    attempts: int = 0


StepDecision = Finished | Skip | Plan | Deny | Wait | Block | Answered | Execute | Fail


# --- the rules ------------------------------------------------------------------------------


def failed(step: Step, reason: str, attempts: int = 0) -> Fail:
    return Fail(reason, stops_run=step.on_error == "fail", attempts=attempts)


def guard_limit(playbook: Playbook, step: Step) -> int | None:
    """Runs per hour the playbook's guards allow the step's action; None: no limit."""
    limit = playbook.guards.actions.get(step.action)
    return None if limit is None else limit.per_hour


def guard_policy(playbook: Playbook) -> Policy:
    """Who releases what the playbook's guards (or `mode: approval`) hold back."""
    approval = playbook.guards.approval
    return Policy(tuple(approval.approvers), approval.quorum)


def released(recorded: Recorded | None) -> bool:
    """A human approved the step past its guards."""
    return (
        recorded is not None and recorded.status == STEP_BLOCKED and recorded.decision == "approved"
    )


def needs_uses(playbook: Playbook, step: Step, recorded: Recorded | None) -> bool:
    """Whether `decide` needs `uses_last_hour`: a guard limits the action and no human has
    released this step from it."""
    return guard_limit(playbook, step) is not None and not released(recorded)


def needs_evidence(playbook: Playbook, side_effect: bool) -> bool:
    """Whether `decide` needs `evidence_recorded`: a side-effecting step of a playbook that
    requires evidence."""
    return side_effect and playbook.requires_evidence


EVIDENCE_MISSING = "guard: no evidence snapshot of the incident yet (require_evidence)"


def decide(
    playbook: Playbook, step: Step, facts: StepFacts, context: Mapping[str, Any]
) -> StepDecision:
    """What happens next to `step`; `context` is what its templates see (`step_context`)."""
    recorded = facts.recorded
    if recorded is not None and recorded.finished:
        return Finished(recorded.output)
    if recorded is None and step.if_ is not None:
        try:
            go = truthy(step.if_, context, f"steps.{step.id}.if")
        except TemplateError as exc:
            return failed(step, str(exc))
        if not go:
            return Skip("if was false")
    if step.action == APPROVAL_ACTION:
        return _approval(step, facts, context)
    if facts.side_effect and facts.killed:  # switched on mid-run: act no further
        return Plan("kill switch on: planned, not run")
    decided = recorded.decision if recorded is not None else None
    if decided == "denied":
        return Deny()
    if needs_evidence(playbook, facts.side_effect):
        if facts.evidence_recorded is None:
            raise ValueError(f"step {step.id}: whether evidence was recorded is needed")
        if not facts.evidence_recorded:
            return Block(
                EVIDENCE_MISSING,
                f"{EVIDENCE_MISSING}. Take one (responder evidence snapshot "
                f"{context.get('incident', {}).get('id', 'INCIDENT')}), then approve step "
                f"{step.id} to go on.",
                guard_policy(playbook),
            )
    if facts.side_effect and facts.mode == "approval" and decided is None:
        prompt = f"Run step {step.id} ({step.action}) of playbook {playbook.id}?"
        return _wait(prompt, None, facts, guard_policy(playbook))
    if needs_uses(playbook, step, recorded):
        per_hour = guard_limit(playbook, step)
        if facts.uses_last_hour is None:
            raise ValueError(f"step {step.id}: the guarded action's uses are needed")
        if per_hour is not None and facts.uses_last_hour >= per_hour:
            reason = f"guard: {step.action} limited to {per_hour} per hour"
            prompt = f"{reason}. Approve to run step {step.id} anyway."
            return Block(reason, prompt, guard_policy(playbook))
    execute = _execute(step, context)
    over = playbook.guards.for_each_over
    count = len(execute.calls) if isinstance(execute, Execute) and execute.each else 0
    if over is not None and count > over and not released(recorded):
        reason = f"guard: {count} items, more than for_each_over={over}"
        prompt = f"Step {step.id} ({step.action}) would act on {count} items. Approve?"
        return Block(reason, prompt, guard_policy(playbook))
    return execute


def _wait(prompt: str, timeout: timedelta | None, facts: StepFacts, policy: Policy) -> Wait:
    if facts.recorded is None:
        deadline = facts.now + timeout if timeout is not None else None
        return Wait(prompt, deadline, ask=True, policy=policy)
    return Wait(prompt, facts.recorded.deadline, ask=False, policy=policy)


def _approval(step: Step, facts: StepFacts, context: Mapping[str, Any]) -> StepDecision:
    try:
        params = ApprovalRequest.model_validate(render(step.with_, context, step.id))
    except (TemplateError, ValidationError) as exc:
        return failed(step, f"approval parameters: {exc}")
    recorded = facts.recorded
    decision: str
    if recorded is None or recorded.decision is None:
        deadline = recorded.deadline if recorded is not None else None
        if deadline is None or facts.now < deadline:
            timeout = parse_duration(params.timeout) if params.timeout else facts.approval_timeout
            return _wait(
                params.prompt, timeout, facts, Policy(tuple(params.approvers), params.quorum)
            )
        decision, by = params.on_timeout, "timeout"
    else:
        decision, by = recorded.decision, recorded.decided_by or "unknown"
    approved = decision in ("approve", "approved")
    given = recorded.reason if recorded is not None else None
    reason = "timed out" if by == "timeout" else given or ("approved" if approved else "denied")
    return Answered({"approved": approved, "decided_by": by, "reason": reason})


def _execute(step: Step, context: Mapping[str, Any]) -> Execute | Fail:
    if step.for_each is None:
        return Execute((Call(step.action, step.with_, context, step.id),))
    try:
        items = render(step.for_each, context, f"steps.{step.id}.for_each")
    except TemplateError as exc:
        return failed(step, str(exc))
    if not isinstance(items, list):
        return failed(step, f"for_each must render a list, got {type(items).__name__}")
    calls = tuple(
        Call(step.action, step.with_, {**context, "item": item}, f"{step.id}[{i}]")
        for i, item in enumerate(items)
    )
    return Execute(calls, each=True)


def after_failure(step: Step, attempt: int, error: BaseException) -> Retry | Fail:
    """The `attempt`-th call (1-based) raised `error`: try again, or the step failed."""
    if isinstance(error, TimeoutError):  # the step's own `timeout` ran out
        error = TimeoutError("timed out")
    if attempt < step.retry.attempts and step.retry.retries(error):
        return Retry(step.retry.delay(attempt))
    return failed(step, f"{type(error).__name__}: {error}", attempt)


def undo_order(playbook: Playbook, recorded: Mapping[str, Recorded]) -> list[tuple[int, Step]]:
    """The steps a false positive compensates, newest first: those with an `undo` that
    completed, and `for_each` steps that failed at an item after others took effect (their
    output lists those items)."""
    return [
        (position, step)
        for position, step in reversed(list(enumerate(playbook.steps)))
        if step.undo is not None and step.id in recorded and _took_effect(step, recorded[step.id])
    ]


def _took_effect(step: Step, recorded: Recorded) -> bool:
    if recorded.status == STEP_DONE:
        return True
    partial = recorded.output
    return (
        recorded.status == STEP_FAILED
        and step.for_each is not None
        and isinstance(partial, list)
        and bool(partial)
    )


def undo_calls(step: Step, output: Any, context: Mapping[str, Any]) -> Execute:
    """The undo of a completed step: once, or once per item of a `for_each` step that took
    effect, where `steps.<own id>.output` is that item's output and `item` the item (the
    for_each list rendered again from the run's snapshot, as it was rendered for the step;
    `item` is none where it no longer renders). Nothing for a step without an `undo`."""
    if step.undo is None:
        return Execute(())
    action, with_ = step.undo.action, step.undo.with_
    if step.for_each is None:
        return Execute((Call(action, with_, context, f"{step.id}.undo"),))
    steps = context["steps"]
    done = output if isinstance(output, list) else []
    items = _items_again(step, context)
    return Execute(
        tuple(
            Call(
                action,
                with_,
                {
                    **context,
                    "item": items[i] if i < len(items) else None,
                    "steps": {**steps, step.id: {"output": out}},
                },
                f"{step.id}[{i}].undo",
            )
            for i, out in enumerate(done)
        ),
        each=True,
    )


def _items_again(step: Step, context: Mapping[str, Any]) -> list[Any]:
    assert step.for_each is not None
    try:
        items = render(step.for_each, context, f"steps.{step.id}.for_each")
    except TemplateError:
        return []
    return items if isinstance(items, list) else []
