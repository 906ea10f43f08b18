"""Slack clicks in, commands out: `SlackFront` takes a click in two halves.

`receive_request` (a signed HTTP request) and `receive_envelope` (a Socket Mode envelope, whose
connection Slack authenticated) check, before the click is acknowledged: the signature and its
timestamp (HTTP), the payload's shape, the click's age (`action_ts` within the tolerance) and
that it was not taken before (`seen.first_time`). A refusal raises `RequestRefused` (the API
answers 401 or 400) and is audited.

`handle` runs after the acknowledgement. It refuses, with an ephemeral message to the user and
an audit record: a user of another workspace (`team_id`), one who is not among the `analysts`
allowed to use the buttons, one who is not among the step's approvers or voted on it already, a
click on a request that is no longer waiting, a button that is not on the request's message.
Otherwise it sends the command through the same service functions as the CLI and the API (actor
`slack:<user id>`), waits for the worker to apply it, and redraws the request's message: with
the approvals so far, or with who decided. The worker checks the vote again when it applies it
(`playbooks.decisions.decide`): the front end's checks are for a quick answer, the worker's are
the ones that count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from responder.actions.ports import Ports, SlackPort
from responder.actions.registry import ActionError
from responder.audit.store import append as audit_append
from responder.incidents.etag import incident_etag
from responder.incidents.store import get_incident
from responder.playbooks.notify import Notifier
from responder.playbooks.quorum import AlreadyVoted, Directory, Policy, Refused, Vote, check_voter
from responder.playbooks.runs import PlaybookRun, StepRun, runs_of_incident
from responder.playbooks.statuses import STEP_BLOCKED, STEP_WAITING
from responder.security.audit_gate import AuditGate
from responder.service import incidents as incident_ops
from responder.service import runs as run_ops
from responder.service.errors import ServiceError
from responder.service.publish import Publisher
from responder.service.slack.clicks import (
    Acknowledge,
    Click,
    DecideIncident,
    DecideStep,
    click_of,
    form_payload,
)
from responder.service.slack.seen import first_time
from responder.service.slack.signature import TOLERANCE_S, RequestRefused, verify
from responder.service.writer import Writer
from responder.settings import SlackSettings

log = structlog.get_logger(__name__)

WAITING = (STEP_WAITING, STEP_BLOCKED)


class SlackClient(SlackPort, Protocol):
    """What the front end says back: message updates, and ephemeral messages to one user."""

    async def post_ephemeral(self, *, channel: str, user: str, text: str) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Refusal:
    reason: str  # the audit record's code
    text: str  # what the user is told
    subject: str = "slack"


@dataclass
class SlackFront:
    engine: Engine
    publisher: Publisher
    settings: SlackSettings
    directory: Directory
    slack: SlackClient | None = None
    clock: Callable[[], float] = time.time
    poll_s: float = 0.2
    gate: AuditGate = field(default_factory=AuditGate)

    @property
    def writer(self) -> Writer:
        return Writer(self.engine, self.publisher)

    # --- before the acknowledgement -------------------------------------------------------

    async def receive_request(
        self, body: bytes, headers: Mapping[str, str], *, remote: str | None = None
    ) -> Click | None:
        """A signed request to POST /v1/slack/actions: the click to handle (None: a verified
        interaction that is not a button click); RequestRefused, audited, otherwise."""
        now = self.clock()
        secret = self.settings.signing_secret
        try:
            if secret is None:
                raise RequestRefused("not_configured", "no signing secret")
            verify(
                body,
                timestamp=headers.get("x-slack-request-timestamp"),
                signature=headers.get("x-slack-signature"),
                secret=secret,
                now=now,
            )
            payload = form_payload(body)
        except RequestRefused as exc:
            await self._audit_refused(exc, via="http", remote=remote)
            raise
        return await self._accept(payload, now, via="http", remote=remote)

    async def receive_envelope(self, payload: Mapping[str, Any]) -> Click | None:
        """The payload of a Socket Mode `interactive` envelope: the click to handle, or None
        (not a click, or refused: audited)."""
        try:
            return await self._accept(payload, self.clock(), via="socket", remote=None)
        except RequestRefused:
            return None

    async def _accept(
        self, payload: Mapping[str, Any], now: float, *, via: str, remote: str | None
    ) -> Click | None:
        try:
            click = click_of(payload)
            if click is None:
                log.info("slack interaction ignored", type=str(payload.get("type"))[:40])
                return None
            age = now - click.action_ts
            if abs(age) > TOLERANCE_S:
                raise RequestRefused(
                    "late", f"clicked {int(age)} s ago (more than {TOLERANCE_S} s)", user=click.user
                )
            if not await asyncio.to_thread(self._first_time, click.replay_key, now):
                raise RequestRefused("replayed", "this click was taken already", user=click.user)
        except RequestRefused as exc:
            await self._audit_refused(exc, via=via, remote=remote)
            raise
        return click

    def _first_time(self, key: str, now: float) -> bool:
        with Session(self.engine) as session:
            at = datetime.fromtimestamp(now, UTC)
            return first_time(session, key, at=at, keep=timedelta(seconds=2 * TOLERANCE_S))

    # --- after it -------------------------------------------------------------------------

    async def handle(self, click: Click) -> None:
        """Act on an accepted click; never raises (a failure is logged and told to the user)."""
        with structlog.contextvars.bound_contextvars(slack_user=click.user, action=click.action_id):
            try:
                refusal = await self._act(click)
            except Exception as exc:  # any failure: the user must hear of it, the worker goes on
                log.exception("slack click failed", error=type(exc).__name__)
                await self._tell(click, "Sorry, that did not work; nothing was changed by it.")
                return
            if refusal is not None:
                await self._refuse(click, refusal)

    async def _act(self, click: Click) -> Refusal | None:
        team = self.settings.team_id
        if team is not None and click.team != team:
            return Refusal("foreign_team", "Only members of this workspace may use these buttons.")
        analysts = self.settings.analysts
        if analysts and not self.directory.allows(analysts, click.actor):
            return Refusal(
                "not_allowed", "You are not among the analysts who may use these buttons."
            )
        intent = click.intent
        if isinstance(intent, Acknowledge):
            return await self._acknowledge(click, intent.incident_id)
        if isinstance(intent, DecideIncident):
            found = await self.writer.read(_waiting_of_incident, intent.incident_id)
            if isinstance(found, Refusal):
                return found
            run_id, step_id = found
            return await self._decide(click, run_id, step_id, intent.approve, on_request=False)
        assert isinstance(intent, DecideStep)
        return await self._decide(
            click, intent.run_id, intent.step_id, intent.approve, on_request=True
        )

    async def _decide(
        self, click: Click, run_id: str, step_id: str, approve: bool, *, on_request: bool
    ) -> Refusal | None:
        checked = await self.writer.read(self._may_vote, click, run_id, step_id, on_request)
        if checked is not None:
            return checked
        try:
            command = await run_ops.decide(
                self.writer, click.actor, run_id, approved=approve, step=step_id
            )
        except ServiceError as exc:
            return Refusal("not_waiting", str(exc), run_id)
        log.info("slack decision sent", run_id=run_id, step=step_id, approve=approve)
        applied = await self._applied(run_id, step_id, command.id)
        await self._redraw(run_id, step_id)
        if not applied:
            await self._tell(click, "Your decision was sent; the worker has not applied it yet.")
        return None

    def _may_vote(
        self, session: Session, click: Click, run_id: str, step_id: str, on_request: bool
    ) -> Refusal | None:
        run = session.get(PlaybookRun, run_id)
        if run is None:
            return Refusal("unknown_run", "This request names no playbook run.", run_id)
        row = session.get(StepRun, (run.id, step_id))
        if row is None or row.status not in WAITING or row.decision is not None:
            state = "unknown" if row is None else row.decision or row.status
            return Refusal("not_waiting", f"Step {step_id} no longer waits ({state}).", run_id)
        notice = row.notice or {}
        posted = (notice.get("channel"), notice.get("ts"))
        if on_request and posted[1] and (click.channel, click.message_ts) != posted:
            return Refusal("wrong_message", "This button is not on the request's message.", run_id)
        approval = row.approval or {}
        policy = Policy.from_json(approval)
        votes = [Vote.from_json(v) for v in approval.get("votes") or []]
        try:
            check_voter(policy, self.directory, votes, click.actor)
        except Refused as exc:
            reason = "already_voted" if isinstance(exc, AlreadyVoted) else "not_approver"
            return Refusal(reason, f"{exc}; it needs {policy.describe()}.", run_id)
        return None

    async def _applied(self, run_id: str, step_id: str, command_id: str) -> bool:
        """Wait (up to `apply_wait_s`) until the worker counted the vote or the step is decided."""
        deadline = time.monotonic() + self.settings.apply_wait_s
        while True:
            if await self.writer.read(_counted, run_id, step_id, command_id):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(self.poll_s)

    async def _redraw(self, run_id: str, step_id: str) -> None:
        """The request's message as it stands: decided (who), or the approvals so far."""
        if self.slack is None:
            return
        found = await self.writer.read(_run_and_step, run_id, step_id)
        if found is None:
            return
        run, row = found
        notifier = Notifier(Ports(slack=self.slack))
        if row.decision is None:
            await notifier.votes_so_far(run, row)
            return
        output = {
            "approved": row.decision == "approved",
            "decided_by": row.decided_by or "unknown",
            "reason": (row.notice or {}).get("reason"),
        }
        await notifier.decided(run, step_id, row, output)

    async def _acknowledge(self, click: Click, incident_id: str) -> Refusal | None:
        found = await self.writer.read(_open_incident, incident_id)
        if isinstance(found, Refusal):
            return found
        full, etag = found
        try:
            await incident_ops.acknowledge(self.writer, click.actor, full, expected=etag)
        except ServiceError as exc:
            return Refusal("not_acknowledged", str(exc), full)
        log.info("slack acknowledgement sent", incident_id=full)
        return None

    # --- saying no ------------------------------------------------------------------------

    async def _refuse(self, click: Click, refusal: Refusal) -> None:
        exc = RequestRefused(refusal.reason, refusal.text, user=click.user)
        await self._audit_refused(exc, via="click", subject=refusal.subject, action=click.action_id)
        await self._tell(click, refusal.text)

    async def _tell(self, click: Click, text: str) -> None:
        if self.slack is None or click.channel is None:
            return
        try:
            await self.slack.post_ephemeral(channel=click.channel, user=click.user, text=text)
        except ActionError as exc:
            log.warning("ephemeral message not sent", error=str(exc))

    async def _audit_refused(
        self,
        exc: RequestRefused,
        *,
        via: str,
        remote: str | None = None,
        subject: str = "slack",
        action: str | None = None,
    ) -> None:
        write, left_out = self.gate.admit(self.clock())
        if not write:  # a flood: counted, told with the next record (and log line) written
            return
        log.warning(
            "slack click refused", reason=exc.reason, detail=exc.detail, via=via, left_out=left_out
        )
        actor = f"analyst:slack:{exc.user}" if exc.user else "slack:unverified"
        data: dict[str, Any] = {"reason": exc.reason, "detail": exc.detail[:300], "via": via}
        if action:
            data["action"] = action[:100]
        if remote:
            data["remote"] = remote[:100]
        if left_out:
            data["refusals_left_out"] = left_out
        await asyncio.to_thread(self._append, actor, subject, data)

    def _append(self, actor: str, subject: str, data: dict[str, Any]) -> None:
        with Session(self.engine) as session, session.begin():
            audit_append(session, [(actor, "slack.refused", subject[:200], data)])


# --- reads (each in a worker thread, in a session of its own) ----------------------------------


def _waiting_of_incident(session: Session, incident_id: str) -> tuple[str, str] | Refusal:
    """The one step of the incident's runs that waits for a decision."""
    incident = get_incident(session, incident_id)
    if incident is None or incident.id != incident_id:
        return Refusal("unknown_incident", "This message names no incident.", incident_id)
    waiting = []
    for run in runs_of_incident(session, incident.id):
        rows = session.exec(
            select(StepRun)
            .where(StepRun.run_id == run.id)
            .where(col(StepRun.status).in_(WAITING))
            .where(col(StepRun.decision).is_(None))
        ).all()
        waiting += [(run.id, row.step_id) for row in rows]
    if not waiting:
        return Refusal("not_waiting", "Nothing of this incident waits for a decision.", incident.id)
    if len(waiting) > 1:
        text = (
            f"{len(waiting)} steps of this incident wait for a decision: use their own "
            "messages, or `responder runs list --status waiting`."
        )
        return Refusal("ambiguous", text, incident.id)
    return waiting[0]


def _open_incident(session: Session, incident_id: str) -> tuple[str, str] | Refusal:
    """The incident's id and ETag, if it is open (acknowledging anything else changes nothing
    the analyst meant to change: a resolved incident is not reopened by an old message)."""
    incident = get_incident(session, incident_id)
    if incident is None or incident.id != incident_id:
        return Refusal("unknown_incident", "This message names no incident.", incident_id)
    if incident.status != "open":
        return Refusal("not_open", f"The incident is {incident.status} already.", incident.id)
    return incident.id, incident_etag(incident)


def _counted(session: Session, run_id: str, step_id: str, command_id: str) -> bool:
    row = session.get(StepRun, (run_id, step_id))
    if row is None:
        return False
    if row.decision is not None or row.status not in WAITING:
        return True
    votes = (row.approval or {}).get("votes") or []
    return any(isinstance(v, dict) and v.get("command") == command_id for v in votes)


def _run_and_step(
    session: Session, run_id: str, step_id: str
) -> tuple[PlaybookRun, StepRun] | None:
    run = session.get(PlaybookRun, run_id)
    row = session.get(StepRun, (run_id, step_id))
    return None if run is None or row is None else (run, row)
