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
from datetime import timedelta
from typing import Any, TypeVar, cast

import structlog
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import Session

from responder.actions.approval import APPROVAL_ACTION, ApprovalRequest
from responder.actions.ports import Ports
from responder.actions.registry import REGISTRY, ActionContext, Registry
from responder.playbooks import runs as R
from responder.playbooks.journal import Journal
from responder.playbooks.loader import PlaybookSet
from responder.playbooks.notify import Notifier
from responder.playbooks.plan import plan_run, step_context
from responder.playbooks.run_state import Pause, RunState, StepFailed
from responder.playbooks.schema import Mode, Step
from responder.playbooks.templating import TemplateError, render, truthy
from responder.settings import PlaybookSettings
from responder.text.duration import parse_duration

log = structlog.get_logger(__name__)
T = TypeVar("T")


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
        concurrency: int = 8,
    ) -> None:
        self.engine = engine
        self.playbooks = playbooks
        self.ports = ports
        self.settings = settings
        self.registry = registry
        self.owner = owner or uuid.uuid4().hex[:16]
        self.lease = timedelta(seconds=settings.lease_s)
        self.journal = Journal(self.owner, self.lease)
        self.concurrency = concurrency
        self.notifier = Notifier(ports)

    # --- scheduling -----------------------------------------------------------------------

    async def tick(self) -> int:
        """Advance every run that can move now, up to `concurrency` at a time (a slow action
        in one run does not hold up the others); return how many were advanced."""
        ids = await self._db(R.runnable)
        slots = asyncio.Semaphore(self.concurrency)

        async def one(rid: str) -> bool:
            async with slots:  # claim only when it can start: the lease must not run down
                if not await self._db(R.claim, rid, self.owner, self.lease):
                    return False
                try:
                    await self.advance(rid)
                finally:
                    await self._db(self.journal.release, rid)
                return True

        done = await asyncio.gather(*(one(rid) for rid in ids))
        await self.notifier.refresh(self._db)
        return sum(done)

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
            self.journal.finish(session, run, R.FAILED, "playbook is no longer loaded")
            return None
        return RunState(
            run,
            R.steps_of(session, rid),
            self.playbooks.get(run.playbook_id),
            killed=self.settings.kill_switch or R.kill_switch_on(session),
        )

    async def _forward(self, state: RunState) -> None:
        run = state.run
        if run.status != R.RUNNING:
            await self._db(self.journal.set_status, run.id, R.RUNNING, "run.started")
        if run.mode == "dry_run":  # the same pure plan as `replay --dry-run`
            planned = plan_run(
                state.playbook,
                incident=run.incident,
                events=run.events,
                variables=self.settings.vars,
            )
            await self._db(self.journal.record_plan, state, planned)
            await self._db(self.journal.finish_id, run.id, R.COMPLETED, None)
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
                await self._db(self.journal.record_failure, state, position, step, exc)
                if step.on_error == "fail":
                    await self._db(self.journal.finish_id, run.id, R.FAILED, f"{step.id}: {exc}")
                    return
                output = None
            state.outputs[step.id] = output
        await self._db(self.journal.finish_id, run.id, R.COMPLETED, None)

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
                    self.journal.record,
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
        if spec.side_effect and state.killed:  # switched on mid-run: act no further
            await self._db(
                self.journal.record,
                state,
                position,
                step,
                R.STEP_PLANNED,
                params=step.with_,
                note="kill switch on: planned, not run",
            )
            return None
        decided = row.decision if row is not None else None
        if spec.side_effect and run.mode == "approval" and decided is None:
            prompt = f"Run step {step.id} ({step.action}) of playbook {state.playbook.id}?"
            await self._wait_for_decision(state, position, step, row, prompt, None)
        if decided == "denied":
            await self._db(self.journal.record, state, position, step, R.STEP_DENIED)
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
        given = (row.notice or {}).get("reason") if row is not None else None
        output = {
            "approved": approved,
            "decided_by": by,
            "reason": "timed out"
            if by == "timeout"
            else given or ("approved" if approved else "denied"),
        }
        await self._db(self.journal.record, state, position, step, R.STEP_DONE, output=output)
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
                self.journal.record,
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
        await self._db(self.journal.park, state.run.id, R.WAITING, deadline)
        raise Pause

    async def _block(
        self, state: RunState, position: int, step: Step, row: R.StepRun | None, per_hour: int
    ) -> None:
        reason = f"guard: {step.action} limited to {per_hour} per hour"
        notice = await self.notifier.ask(
            state.run, step.id, f"{reason}. Approve to run step {step.id} anyway."
        )
        await self._db(
            self.journal.record, state, position, step, R.STEP_BLOCKED, note=reason, notice=notice
        )
        await self._db(self.journal.finish_id, state.run.id, R.BLOCKED, reason)
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
        await self._db(self.journal.record, state, position, step, R.STEP_DONE, output=output)
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
                await self._db(self.journal.started, state, position, step, raw, attempt)
            try:
                output = await asyncio.wait_for(spec.fn(params, ctx), timeout)
                return json.loads(json.dumps(output, default=str))
            except Exception as exc:  # an action may fail in any way; the policy decides
                error = exc if not isinstance(exc, TimeoutError) else TimeoutError("timed out")
                if attempt < step.retry.attempts and step.retry.retries(error):
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
            await self._db(self.journal.undone, state, step.id, status, out)
        await self._db(self.journal.finish_id, state.run.id, R.UNDONE, None)


def _run_status(session: Session, rid: str) -> str | None:
    run = session.get(R.PlaybookRun, rid)
    return None if run is None else run.status
