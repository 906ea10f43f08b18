"""The kill switch: its state (a query) and turning it on or off (a published command)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlmodel import Session

from responder.commands import AnyCommand, KillSwitch
from responder.playbooks.runs import KILL_SWITCH, Switch
from responder.service.views import Utc
from responder.service.writer import Writer, build


class KillSwitchState(BaseModel):
    on: bool
    by: str | None = None
    at: Utc | None = None
    setting: bool = False  # RESPONDER_PLAYBOOKS__KILL_SWITCH forces dry runs anyway


def kill_switch_state(session: Session, *, setting: bool = False) -> KillSwitchState:
    row = session.get(Switch, KILL_SWITCH)
    at: datetime | None = row.at if row else None
    return KillSwitchState(
        on=bool(row and row.on), by=row.by if row else None, at=at, setting=setting
    )


async def set_kill_switch(w: Writer, by: str, *, on: bool, reason: str | None = None) -> AnyCommand:
    """Every playbook run becomes a dry run (on), or may act again (off); every worker at once."""
    return await w.send(build(KillSwitch, on=on, by=by, reason=reason))
