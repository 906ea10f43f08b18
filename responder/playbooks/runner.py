"""The durable playbook runner: advances runs stored in SQL, one step at a time.

A step's start is committed before its action is called and its output after, so the SQL rows
are the run's memory: a worker killed between two steps resumes after the last completed one,
and a step interrupted mid-call is tried again with the same idempotency key (run id + step id),
which idempotent actions use to avoid a second side effect. Approvals, guard blocks and undo are
states of the same rows; every transition is appended to the audit chain (secrets masked).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar, cast

import structlog
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import Session

from responder.actions.approval import APPROVAL_ACTION, ApprovalRequest
from responder.actions.ports import Ports
from responder.actions.registry import REGISTRY, ActionContext, Registry
from responder.audit.store import append as audit_append
from responder.correlation.rules import parse_duration
from responder.logging import scrub
from responder.playbooks import runs as R
from responder.playbooks.loader import PlaybookSet
from responder.playbooks.notify import Notifier
from responder.playbooks.plan import PlannedRun, plan_run, step_context
from responder.playbooks.schema import Mode, Playbook, Step
from responder.playbooks.templating import TemplateError, render, truthy
from responder.settings import PlaybookSettings

log = structlog.get_logger(__name__)
T = TypeVar("T")


class Pause(Exception):
    """The run waits (approval, guard); the runner releases it."""


class StepFailed(Exception):
    def __init__(self, message: str, attempts: int = 0) -> None:
        super().__init__(message)
        self.attempts = attempts


@dataclass
class RunState:
    run: R.PlaybookRun
    steps: dict[str, R.StepRun]
    playbook: Playbook
    outputs: dict[str, Any] = field(default_factory=dict)


class Runner:
    def __init__(
        self,
        *,
        engine: Engine,
        playbooks: PlaybookSet,
        ports: Ports,
        settings: PlaybookSettings,
        registry: Registry = REGISTRY,
        owner: str | None = None,
    ) -> None:
        self.engine = engine
        self.playbooks = playbooks
        self.ports = ports
        self.settings = settings
        self.registry = registry
        self.owner = owner or uuid.uuid4().hex[:16]
        self.lease = timedelta(seconds=settings.lease_s)
        self.notifier = Notifier(ports)

    # --- scheduling -----------------------------------------------------------------------

    async def tick(self) -> int:
        """Advance every run that can move now; return how many were advanced."""
        ids = await self._db(R.runnable)
        advanced = 0
        for rid in ids:
            if await self._db(R.claim, rid, self.owner, self.lease):
                try:
                    await self.advance(rid)
                finally:
                    await self._db(self._release, rid)
                advanced += 1
        return advanced

    def _release(self, session: Session, rid: str) -> None:
        run = session.get(R.PlaybookRun, rid)
        if run is not None and run.lease_owner == self.owner:
            run.lease_owner, run.lease_until = None, None
            session.add(run)
            session.commit()

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(session, *args, **kwargs)` in a worker thread, in one committed transaction."""

        def work() -> T:
            with Session(self.engine, expire_on_commit=False) as session:
                result = fn(session, *args, **kwargs)
                session.commit()
                return result

        return await asyncio.to_thread(work)

    # --- advancing ------------------------------------------------------------------------

    async def advance(self, rid: str) -> None:
        state = await self._db(self._load, rid)
        if state is None:
            return
        with structlog.contextvars.bound_contextvars(
            run_id=rid, incident_id=state.run.incident_id, playbook=state.playbook.id
        ):
            try:
                if state.run.status == R.UNDOING:
                    await self._undo(state)
                else:
                    await self._forward(state)
            except Pause:
                return

    def _load(self, session: Session, rid: str) -> RunState | None:
        run = session.get(R.PlaybookRun, rid)
        if run is None or run.status not in R.ACTIVE:
            return None
        if run.playbook_id not in self.playbooks:
            self._finish(session, run, R.FAILED, "playbook is no longer loaded")
            return None
        return RunState(run, R.steps_of(session, rid), self.playbooks.get(run.playbook_id))

    async def _forward(self, state: RunState) -> None:
        run = state.run
        if run.status != R.RUNNING:
            await self._db(self._set_status, run.id, R.RUNNING, "run.started")
        if run.mode == "dry_run":  # the same pure planner as `replay --dry-run`
            planned = plan_run(
                state.playbook,
                incident=run.incident,
                events=run.events,
                variables=self.settings.vars,
            )
            await self._db(self._record_plan, state, planned)
            await self._db(self._finish_id, run.id, R.COMPLETED, None)
            return
        for position, step in enumerate(state.playbook.steps):
            row = state.steps.get(step.id)
            if row is not None and row.status in (*R.FINISHED_STEPS, R.STEP_DENIED):
                state.outputs[step.id] = row.output
                continue
            if not await self._still_forward(run.id):
                return
            try:
                output = await self._step(state, position, step, row)
            except StepFailed as exc:
                await self._db(self._record_failure, state, position, step, exc)
                if step.on_error == "fail":
                    await self._db(self._finish_id, run.id, R.FAILED, f"{step.id}: {exc}")
                    return
                output = None
            state.outputs[step.id] = output
        await self._db(self._finish_id, run.id, R.COMPLETED, None)

    async def _still_forward(self, rid: str) -> bool:
        status = await self._db(_run_status, rid)
        return status in (R.PENDING, R.RUNNING, R.WAITING)

    async def _step(self, state: RunState, position: int, step: Step, row: R.StepRun | None) -> Any:
        run = state.run
        context = step_context(
            run.incident,
            run.events,
            state.outputs,
            playbook=state.playbook,
            mode=cast(Mode, run.mode),
            variables=self.settings.vars,
        )
        fresh = row is None
        if fresh and step.if_ is not None:
            try:
                go = truthy(step.if_, context, f"steps.{step.id}.if")
            except TemplateError as exc:
                raise StepFailed(str(exc)) from None
            if not go:
                await self._db(
                    self._record,
                    state,
                    position,
                    step,
                    R.STEP_SKIPPED,
                    output=None,
                    note="if was false",
                )
                return None
        if step.action == APPROVAL_ACTION:
            return await self._approval(state, position, step, row, context)
        spec = self.registry.get(step.action)
        decided = row.decision if row is not None else None
        if spec.side_effect and run.mode == "approval" and decided is None:
            prompt = f"Run step {step.id} ({step.action}) of playbook {state.playbook.id}?"
            await self._wait_for_decision(state, position, step, row, prompt, None)
        if decided == "denied":
            await self._db(self._record, state, position, step, R.STEP_DENIED)
            return None
        limit = state.playbook.guards.actions.get(step.action)
        overridden = row is not None and row.status == R.STEP_BLOCKED and decided == "approved"
        if limit is not None and not overridden:
            used = await self._db(R.action_uses_in_last_hour, step.action)
            if used >= limit.per_hour:
                await self._block(state, position, step, row, limit.per_hour)
        return await self._execute(state, position, step, context)

    # --- approvals and guards -------------------------------------------------------------

    async def _approval(
        self,
        state: RunState,
        position: int,
        step: Step,
        row: R.StepRun | None,
        context: dict[str, Any],
    ) -> Any:
        try:
            params = ApprovalRequest.model_validate(render(step.with_, context, step.id))
        except (TemplateError, ValidationError) as exc:
            raise StepFailed(f"approval parameters: {exc}") from None
        decision: str
        if row is None or row.decision is None:
            timeout = (
                parse_duration(params.timeout)
                if params.timeout
                else timedelta(seconds=self.settings.approval_timeout_s)
            )
            if row is not None and row.deadline is not None and R.now() >= R.aware(row.deadline):
                decision, by = params.on_timeout, "timeout"
            else:
                await self._wait_for_decision(state, position, step, row, params.prompt, timeout)
                return None  # not reached: waiting raises Pause
        else:
            decision, by = row.decision, row.decided_by or "unknown"
        approved = decision in ("approve", "approved")
        output = {
            "approved": approved,
            "decided_by": by,
            "reason": "timed out" if by == "timeout" else f"{'approved' if approved else 'denied'}",
        }
        await self._db(self._record, state, position, step, R.STEP_DONE, output=output)
        if row is not None and row.notice:
            await self.notifier.decided(state.run, step.id, row, output)
        return output

    async def _wait_for_decision(
        self,
        state: RunState,
        position: int,
        step: Step,
        row: R.StepRun | None,
        prompt: str,
        timeout: timedelta | None,
    ) -> None:
        if row is None:
            deadline = R.now() + timeout if timeout is not None else None
            notice = await self.notifier.ask(state.run, step.id, prompt)
            await self._db(
                self._record,
                state,
                position,
                step,
                R.STEP_WAITING,
                params={"prompt": prompt},
                deadline=deadline,
                notice=notice,
            )
        else:
            deadline = row.deadline
        await self._db(self._park, state.run.id, R.WAITING, deadline)
        raise Pause

    async def _block(
        self, state: RunState, position: int, step: Step, row: R.StepRun | None, per_hour: int
    ) -> None:
        reason = f"guard: {step.action} limited to {per_hour} per hour"
        notice = await self.notifier.ask(
            state.run, step.id, f"{reason}. Approve to run step {step.id} anyway."
        )
        await self._db(
            self._record, state, position, step, R.STEP_BLOCKED, note=reason, notice=notice
        )
        await self._db(self._finish_id, state.run.id, R.BLOCKED, reason)
        raise Pause

    # --- executing ------------------------------------------------------------------------

    def _items(self, step: Step, context: dict[str, Any]) -> list[Any] | None:
        if step.for_each is None:
            return None
        value = render(step.for_each, context, f"steps.{step.id}.for_each")
        if not isinstance(value, list):
            raise StepFailed(f"for_each must render a list, got {type(value).__name__}")
        return value

    async def _execute(
        self, state: RunState, position: int, step: Step, context: dict[str, Any]
    ) -> Any:
        try:
            items = self._items(step, context)
        except TemplateError as exc:
            raise StepFailed(str(exc)) from None
        if items is None:
            output = await self._call(state, position, step, context, step.id)
        else:
            output = [
                await self._call(
                    state, position, step, {**context, "item": item}, f"{step.id}[{i}]"
                )
                for i, item in enumerate(items)
            ]
        await self._db(self._record, state, position, step, R.STEP_DONE, output=output)
        return output

    async def _call(
        self,
        state: RunState,
        position: int,
        step: Step,
        context: dict[str, Any],
        key: str,
        *,
        action: str | None = None,
        template: dict[str, Any] | None = None,
    ) -> Any:
        """One action call with the step's retry and timeout policy; returns its JSON output."""
        spec = self.registry.get(action or step.action)
        try:
            raw = render(step.with_ if template is None else template, context, key)
            params = spec.params.model_validate(raw)
        except (TemplateError, ValidationError) as exc:
            raise StepFailed(f"parameters: {exc}") from None
        ctx = ActionContext(
            run_id=state.run.id, step_id=key, ports=self.ports, incident=state.run.incident
        )
        timeout = step.timeout.total_seconds() if step.timeout else None
        attempt = 0
        while True:
            attempt += 1
            if action is None:
                await self._db(self._started, state, position, step, raw, attempt)
            try:
                output = await asyncio.wait_for(spec.fn(params, ctx), timeout)
                return json.loads(json.dumps(output, default=str))
            except Exception as exc:  # an action may fail in any way; the policy decides
                error = exc if not isinstance(exc, TimeoutError) else TimeoutError("timed out")
                if attempt < step.retry.attempts and step.retry.retries(_retryable(error)):
                    delay = step.retry.delay(attempt).total_seconds()
                    log.warning(
                        "step attempt failed, retrying",
                        step=key,
                        attempt=attempt,
                        error=str(error),
                        delay=delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                raise StepFailed(f"{type(error).__name__}: {error}", attempt) from None

    # --- undo -----------------------------------------------------------------------------

    async def _undo(self, state: RunState) -> None:
        """Compensate completed steps that name an `undo`, newest first."""
        for position in range(len(state.playbook.steps) - 1, -1, -1):
            step = state.playbook.steps[position]
            row = state.steps.get(step.id)
            if step.undo is None or row is None or row.status != R.STEP_DONE:
                continue
            outputs = {sid: r.output for sid, r in state.steps.items()}
            context = step_context(
                state.run.incident,
                state.run.events,
                outputs,
                playbook=state.playbook,
                variables=self.settings.vars,
            )
            try:
                if step.for_each is None:
                    result: Any = await self._call(
                        state,
                        position,
                        step,
                        context,
                        f"{step.id}.undo",
                        action=step.undo.action,
                        template=step.undo.with_,
                    )
                else:
                    result = []
                    for i, item_output in enumerate(row.output or []):
                        ctx_i = {
                            **context,
                            "steps": {**context["steps"], step.id: {"output": item_output}},
                        }
                        result.append(
                            await self._call(
                                state,
                                position,
                                step,
                                ctx_i,
                                f"{step.id}[{i}].undo",
                                action=step.undo.action,
                                template=step.undo.with_,
                            )
                        )
                status, out = R.STEP_UNDONE, result
            except StepFailed as exc:
                status, out = R.STEP_UNDO_FAILED, {"error": str(exc)}
            await self._db(self._undone, state, step.id, status, out)
        await self._db(self._finish_id, state.run.id, R.UNDONE, None)

    # --- rows and audit (run in a worker thread, one transaction each) --------------------

    def _audit(
        self, session: Session, run: R.PlaybookRun, action: str, data: dict[str, Any]
    ) -> None:
        audit_append(session, [(f"playbook:{run.playbook_id}", action, run.id, scrub(data))])

    def _row(self, session: Session, state: RunState, position: int, step: Step) -> R.StepRun:
        row = session.get(R.StepRun, (state.run.id, step.id))
        if row is None:
            row = R.StepRun(
                run_id=state.run.id,
                step_id=step.id,
                position=position,
                action=step.action,
                status=R.STEP_RUNNING,
            )
        return row

    def _started(
        self,
        session: Session,
        state: RunState,
        position: int,
        step: Step,
        params: Any,
        attempt: int,
    ) -> None:
        row = self._row(session, state, position, step)
        row.status, row.attempts = R.STEP_RUNNING, row.attempts + 1
        row.params = scrub({"with": params})["with"] if isinstance(params, dict) else {}
        row.started_at = row.started_at or R.now()
        session.add(row)
        if attempt == 1:
            self._audit(
                session,
                state.run,
                "step.started",
                {"step": step.id, "action": step.action, "with": row.params},
            )
        self._renew(session, state.run.id)

    def _record(
        self,
        session: Session,
        state: RunState,
        position: int,
        step: Step,
        status: str,
        *,
        output: Any = None,
        params: Any = None,
        note: str | None = None,
        deadline: Any = None,
        notice: dict[str, Any] | None = None,
    ) -> None:
        row = self._row(session, state, position, step)
        row.status, row.output = status, output
        if params is not None:
            row.params = (
                scrub({"with": params})["with"] if isinstance(params, dict) else {"items": params}
            )
        if note is not None:
            row.error = note
        if deadline is not None:
            row.deadline = deadline
        if notice is not None:
            row.notice = notice
        if status in R.FINISHED_STEPS or status == R.STEP_DENIED:
            row.finished_at = R.now()
        session.add(row)
        state.steps[step.id] = row
        data: dict[str, Any] = {"step": step.id, "action": step.action}
        if output is not None:
            data["output"] = output
        if note:
            data["note"] = note
        if status == R.STEP_PLANNED:
            data["with"] = row.params
        self._audit(session, state.run, f"step.{status}", data)
        self._renew(session, state.run.id)

    def _record_plan(self, session: Session, state: RunState, planned: PlannedRun) -> None:
        by_step: dict[str, list[dict[str, Any]]] = {}
        for planned_step in planned.steps:
            by_step.setdefault(planned_step.id, []).append(planned_step.to_json())
        for position, step in enumerate(state.playbook.steps):
            items = by_step.get(step.id, [])
            skipped = next((i.get("skipped") for i in items if i.get("skipped")), None)
            row = self._row(session, state, position, step)
            row.status = R.STEP_SKIPPED if skipped else R.STEP_PLANNED
            row.error = skipped
            if len(items) == 1 and "item" not in items[0]:
                row.params = scrub({"with": items[0].get("with") or {}})["with"]
            else:
                row.params = {
                    "items": [scrub({"with": i.get("with") or {}})["with"] for i in items]
                }
            row.finished_at = R.now()
            session.add(row)
            self._audit(
                session,
                state.run,
                f"step.{row.status}",
                {"step": step.id, "action": step.action, "with": row.params},
            )

    def _record_failure(
        self, session: Session, state: RunState, position: int, step: Step, exc: StepFailed
    ) -> None:
        row = self._row(session, state, position, step)
        row.status, row.error, row.finished_at = R.STEP_FAILED, str(exc), R.now()
        session.add(row)
        self._audit(
            session,
            state.run,
            "step.failed",
            {"step": step.id, "action": step.action, "error": str(exc), "on_error": step.on_error},
        )

    def _undone(
        self, session: Session, state: RunState, step_id: str, status: str, output: Any
    ) -> None:
        row = session.get(R.StepRun, (state.run.id, step_id))
        if row is None:
            return
        row.status, row.undo_output = status, output
        session.add(row)
        self._audit(session, state.run, f"step.{status}", {"step": step_id, "undo": output})

    def _renew(self, session: Session, rid: str) -> None:
        run = session.get(R.PlaybookRun, rid)
        if run is not None and run.lease_owner == self.owner:
            run.lease_until = R.now() + self.lease
            session.add(run)

    def _set_status(self, session: Session, rid: str, status: str, audit: str) -> None:
        run = session.get(R.PlaybookRun, rid)
        if run is not None:
            run.status, run.updated_at, run.wake_at = status, R.now(), None
            session.add(run)
            self._audit(session, run, audit, {"mode": run.mode, "incident": run.incident_id})

    def _park(self, session: Session, rid: str, status: str, wake_at: Any) -> None:
        run = session.get(R.PlaybookRun, rid)
        if run is not None:
            run.status, run.wake_at, run.updated_at = status, wake_at, R.now()
            if wake_at is None:  # no deadline: only a decision wakes it
                run.wake_at = R.now() + timedelta(days=3650)
            session.add(run)

    def _finish_id(self, session: Session, rid: str, status: str, error: str | None) -> None:
        run = session.get(R.PlaybookRun, rid)
        if run is not None:
            self._finish(session, run, status, error)

    def _finish(self, session: Session, run: R.PlaybookRun, status: str, error: str | None) -> None:
        run.status, run.error, run.updated_at, run.wake_at = status, error, R.now(), None
        session.add(run)
        data: dict[str, Any] = {"incident": run.incident_id, "mode": run.mode}
        if error:
            data["error"] = error
        self._audit(session, run, f"run.{status}", data)


def _retryable(error: BaseException) -> BaseException:
    """Timeouts are worth a retry: present them as a retryable ActionError to the policy."""
    if isinstance(error, TimeoutError):
        from responder.actions.registry import ActionError

        return ActionError("timed out", retryable=True, code="timeout")
    return error


def _run_status(session: Session, rid: str) -> str | None:
    run = session.get(R.PlaybookRun, rid)
    return None if run is None else run.status
