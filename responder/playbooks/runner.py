"""The durable playbook runner: advances runs stored in SQL, one step at a time.

A thin loop: for each step it gathers the facts (rows, kill switch, guard counts, the clock),
asks the pure `step_rules.decide` what happens next, and applies the answer through the journal
(SQL + audit) and the action ports.

A step's start is committed before its action is called and its output after, so the SQL rows
are the run's memory: a worker killed between two steps resumes after the last completed one,
and a step interrupted mid-call is tried again with the same idempotency key (run id + step id),
which idempotent actions use to avoid a second side effect. Approvals, guard blocks and undo are
states of the same rows; every transition is appended to the audit chain (secrets masked).
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, assert_never, cast

import structlog
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import Session

from responder.actions.ports import Ports
from responder.actions.registry import REGISTRY, ActionContext, Registry
from responder.metrics.worker import ACTION_SECONDS, actions
from responder.playbooks import runs as R
from responder.playbooks import statuses as S
from responder.playbooks.journal import Journal
from responder.playbooks.loader import PlaybookSet
from responder.playbooks.notify import Notifier
from responder.playbooks.plan import plan_run, step_context
from responder.playbooks.run_state import LeaseLost, Pause, RunState, StepFailed
from responder.playbooks.schema import Mode, Step, action_side_effect
from responder.playbooks.step_rules import (
    Answered,
    Block,
    Call,
    Deny,
    Execute,
    Fail,
    Finished,
    Plan,
    Recorded,
    Retry,
    Skip,
    StepFacts,
    Wait,
    after_failure,
    decide,
    failed,
    needs_evidence,
    needs_uses,
    undo_calls,
    undo_order,
)
from responder.playbooks.templating import TemplateError, render
from responder.settings import PlaybookSettings

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
                beat = asyncio.create_task(self._heartbeat(rid))
                try:
                    await self.advance(rid)
                finally:
                    beat.cancel()
                    await asyncio.gather(beat, return_exceptions=True)
                    await self._db(self.journal.release, rid)
                return True

        done = await asyncio.gather(*(one(rid) for rid in ids))
        await self.notifier.refresh(self._db)
        return sum(done)

    async def _heartbeat(self, rid: str) -> None:
        """Renew the run's lease every third of it while the run is advanced, so that a step
        longer than the lease (a slow action, attempts and their backoff) is not claimed and
        called again by another runner. A runner that dies stops renewing, and the run is
        resumed elsewhere once its lease runs out, as before."""
        every = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            try:
                held = await self._db(R.renew_lease, rid, self.owner, self.lease)
            except Exception as exc:  # the database away: the next beat tries again
                log.warning("could not renew a run's lease", run_id=rid, error=repr(exc)[:200])
                continue
            if not held:  # `journal.hold` stops the run before its next action
                log.warning("another worker took over the run", run_id=rid)
                return

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
                if state.run.status == S.UNDOING:
                    await self._undo(state)
                else:
                    await self._forward(state)
            except LeaseLost:
                log.warning("another worker holds the run now; stopped advancing it")
            except Pause:
                return

    def _load(self, session: Session, rid: str) -> RunState | None:
        run = session.get(R.PlaybookRun, rid)
        if run is None or run.status not in S.ACTIVE:
            return None
        if run.playbook_id not in self.playbooks:
            self.journal.finish(session, run, S.FAILED, "playbook is no longer loaded")
            return None
        try:
            events = R.run_events(session, run)
        except R.EvidenceChanged as exc:  # never act on other events than those that started it
            undo = "undo not done: " if run.status == S.UNDOING else ""
            log.error("a run's evidence is not as its change left it", run_id=rid)
            self.journal.finish_id(session, rid, S.FAILED, f"{undo}{exc}")
            return None
        return RunState(
            run,
            R.steps_of(session, rid),
            self.playbooks.get(run.playbook_id),
            events=events,
            killed=self.settings.kill_switch or R.kill_switch_on(session),
        )

    async def _forward(self, state: RunState) -> None:
        run = state.run
        if run.status != S.RUNNING:
            await self._db(self.journal.set_status, run.id, S.RUNNING, "run.started")
        if run.mode == "dry_run":  # the same pure plan as `replay --dry-run`
            planned = plan_run(
                state.playbook,
                incident=run.incident,
                events=state.events,
                variables=self.settings.vars,
            )
            await self._db(self.journal.record_plan, state, planned)
            await self._db(self.journal.finish_id, run.id, S.COMPLETED, None)
            return
        for position, step in enumerate(state.playbook.steps):
            row = state.steps.get(step.id)
            recorded = None if row is None else _recorded(row)
            if recorded is not None and recorded.finished:
                state.outputs[step.id] = recorded.output
                continue
            if not await self._still_forward(run.id):
                return
            try:
                output = await self._step(state, position, step, row, recorded)
            except StepFailed as exc:
                await self._db(self.journal.record_failure, state, position, step, exc)
                if exc.fail.stops_run:
                    await self._db(self.journal.finish_id, run.id, S.FAILED, f"{step.id}: {exc}")
                    return
                output = None
            state.outputs[step.id] = output
        await self._db(self.journal.finish_id, run.id, S.COMPLETED, None)

    async def _still_forward(self, rid: str) -> bool:
        """Whether the run still goes forward (not cancelled or undone); `LeaseLost` if another
        runner holds it now, before this one decides its next step."""
        status, owner = await self._db(_run_status, rid)
        if status is not None and owner != self.owner:
            raise LeaseLost(rid)
        return status in (S.PENDING, S.RUNNING, S.WAITING)

    async def _step(
        self,
        state: RunState,
        position: int,
        step: Step,
        row: R.StepRun | None,
        recorded: Recorded | None,
    ) -> Any:
        """Decide what happens to the step (`step_rules.decide`) and do it; return its output."""
        run = state.run
        context = step_context(
            run.incident,
            state.events,
            state.outputs,
            playbook=state.playbook,
            mode=cast(Mode, run.mode),
            variables=self.settings.vars,
        )
        uses = None
        if needs_uses(state.playbook, step, recorded):
            uses = await self._db(R.action_uses_in_last_hour, step.action)
        side_effect = action_side_effect(self.registry, step.action)
        evidence = None
        if needs_evidence(state.playbook, side_effect):
            evidence = await self._db(R.evidence_recorded, run.incident_id)
        facts = StepFacts(
            mode=cast(Mode, run.mode),
            side_effect=side_effect,
            now=R.now(),
            approval_timeout=timedelta(seconds=self.settings.approval_timeout_s),
            recorded=recorded,
            killed=state.killed,
            uses_last_hour=uses,
            evidence_recorded=evidence,
        )
        record = functools.partial(self._db, self.journal.record, state, position, step)
        decision = decide(state.playbook, step, facts, context)
        match decision:
            case Finished(output):
                return output
            case Skip(reason):
                await record(S.STEP_SKIPPED, output=None, note=reason)
                return None
            case Plan(note):
                await record(S.STEP_PLANNED, params=step.with_, note=note)
                return None
            case Deny():
                await record(S.STEP_DENIED)
                return None
            case Answered(output):
                await record(S.STEP_DONE, output=output)
                if row is not None and row.notice:
                    await self.notifier.decided(run, step.id, row, output)
                return output
            case Wait() as wait:
                await self._wait(state, position, step, wait)
                raise Pause
            case Block() as block:
                await self._block(state, position, step, block)
                raise Pause
            case Execute() as execute:
                output = await self._execute(state, position, step, execute)
                await record(S.STEP_DONE, output=output)
                return output
            case Fail() as fail:
                raise StepFailed(fail)
            case _:
                assert_never(decision)

    # --- approvals and guards -------------------------------------------------------------

    async def _wait(self, state: RunState, position: int, step: Step, wait: Wait) -> None:
        if wait.ask:
            notice = await self.notifier.ask(state.run, step.id, wait.prompt, wait.policy)
            await self._db(
                self.journal.record,
                state,
                position,
                step,
                S.STEP_WAITING,
                params={"prompt": wait.prompt},
                deadline=wait.deadline,
                notice=notice,
                approval=wait.policy.to_json(),
            )
        await self._db(self.journal.park, state.run.id, S.WAITING, wait.deadline)

    async def _block(self, state: RunState, position: int, step: Step, block: Block) -> None:
        notice = await self.notifier.ask(state.run, step.id, block.prompt, block.policy)
        await self._db(
            self.journal.record,
            state,
            position,
            step,
            S.STEP_BLOCKED,
            note=block.reason,
            notice=notice,
            approval=block.policy.to_json(),
        )
        await self._db(self.journal.finish_id, state.run.id, S.BLOCKED, block.reason)

    # --- executing ------------------------------------------------------------------------

    async def _execute(
        self, state: RunState, position: int, step: Step, execute: Execute, *, undo: bool = False
    ) -> Any:
        """Every call of the decision, in order; the output of the one call or their list.
        A for_each item that fails stops the step and carries the outputs of those before it
        (`StepFailed.partial`), so what they did can be undone."""
        outputs: list[Any] = []
        for call in execute.calls:
            try:
                outputs.append(await self._call(state, position, step, call, undo=undo))
            except StepFailed as exc:
                if execute.each and not undo and outputs:
                    raise StepFailed(exc.fail, partial=outputs) from None
                raise
        return outputs if execute.each else outputs[0] if outputs else None

    async def _call(
        self, state: RunState, position: int, step: Step, call: Call, *, undo: bool = False
    ) -> Any:
        """One action call under the step's retry and timeout policy; returns its JSON output.

        An `undo` call's start is not journaled: the step stays completed until
        `journal.undone` records how its compensation went."""
        spec = self.registry.get(call.action)
        try:
            raw = render(call.with_, call.context, call.key)
            params = spec.params.model_validate(raw)
        except (TemplateError, ValidationError) as exc:
            raise StepFailed(failed(step, f"parameters: {exc}")) from None
        ctx = ActionContext(
            run_id=state.run.id, step_id=call.key, ports=self.ports, incident=state.run.incident
        )
        timeout = step.timeout.total_seconds() if step.timeout else None
        attempt = 0
        while True:
            attempt += 1
            if undo:  # not journaled, but called only while this runner holds the run
                await self._db(self.journal.hold, state.run.id)
            else:
                await self._db(self.journal.started, state, position, step, raw, attempt)
            started = time.perf_counter()
            try:
                async with asyncio.timeout(timeout):
                    output = await spec.fn(params, ctx)
                ACTION_SECONDS.labels(actions(call.action), "ok").observe(
                    time.perf_counter() - started
                )
                return json.loads(json.dumps(output, default=str))
            except Exception as exc:  # an action may fail in any way; the policy decides
                task = asyncio.current_task()
                if task is not None and task.cancelling():  # the runner stopping, turned into
                    raise asyncio.CancelledError from exc  # an error by the action: no failure
                ACTION_SECONDS.labels(actions(call.action), "error").observe(
                    time.perf_counter() - started
                )
                match after_failure(step, attempt, exc):
                    case Retry(after):
                        log.warning(
                            "step attempt failed, retrying",
                            step=call.key,
                            attempt=attempt,
                            error=str(exc) or type(exc).__name__,
                            delay=after.total_seconds(),
                        )
                        await asyncio.sleep(after.total_seconds())
                    case Fail() as fail:
                        raise StepFailed(fail) from None

    # --- undo -----------------------------------------------------------------------------

    async def _undo(self, state: RunState) -> None:
        """Compensate completed steps that name an `undo`, newest first (`step_rules.undo_order`)."""
        recorded = {sid: _recorded(row) for sid, row in state.steps.items()}
        for position, step in undo_order(state.playbook, recorded):
            outputs = {sid: r.output for sid, r in state.steps.items()}
            context = step_context(
                state.run.incident,
                state.events,
                outputs,
                playbook=state.playbook,
                variables=self.settings.vars,
            )
            calls = undo_calls(step, recorded[step.id].output, context)
            try:
                result = await self._execute(state, position, step, calls, undo=True)
                status, out = S.STEP_UNDONE, result
            except StepFailed as exc:
                status, out = S.STEP_UNDO_FAILED, {"error": str(exc)}
            await self._db(self.journal.undone, state, step.id, status, out)
        await self._db(self.journal.finish_id, state.run.id, S.UNDONE, None)


def _recorded(row: R.StepRun) -> Recorded:
    """A step row as the step rules read it."""
    return Recorded(
        status=row.status,
        output=row.output,
        decision=row.decision,
        decided_by=row.decided_by,
        reason=(row.notice or {}).get("reason"),
        deadline=R.aware(row.deadline) if row.deadline is not None else None,
    )


def _run_status(session: Session, rid: str) -> tuple[str | None, str | None]:
    """The run's status and the runner holding its lease."""
    run = session.get(R.PlaybookRun, rid)
    return (None, None) if run is None else (run.status, run.lease_owner)
