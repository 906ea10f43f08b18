"""`responder tokens ...`: API tokens, straight in the database (create, list, revoke)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from sqlmodel import Session

from responder import bootstrap
from responder.cli.console import out
from responder.cli.options import AsJson, By, attempt, default_user
from responder.service import tokens
from responder.service.identity import Role, person
from responder.text.duration import parse_duration

tokens_app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)


def _actor(by: str) -> str:
    return f"analyst:{attempt(lambda: person(by or default_user()))}"


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option("--name", help="unique, e.g. alice-laptop or ci-ingest")],
    role: Annotated[Role, typer.Option("--role", help="what the token may do")],
    expires: Annotated[
        str | None, typer.Option(help="lifetime, e.g. 90d or 12h (default: until revoked)")
    ] = None,
    by: By = "",
) -> None:
    """Create a token; it is printed once, alone on the last line (only its digest is kept)."""
    try:
        ttl = parse_duration(expires) if expires is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--expires") from None
    actor = _actor(by)
    with Session(bootstrap.services().engine) as session, session.begin():
        view, secret = attempt(
            lambda: tokens.issue(session, name=name, role=role.value, actor=actor, ttl=ttl)
        )
    until = f", expires {view.expires_at:%Y-%m-%d %H:%M:%S}Z" if view.expires_at else ""
    out.print(
        f"token {view.name} ({view.role.value}{until}); it is not shown again:", highlight=False
    )
    print(secret)


@tokens_app.command("list")
def tokens_list(
    include_revoked: Annotated[bool, typer.Option("--all", help="revoked tokens too")] = False,
    as_json: AsJson = False,
) -> None:
    """List tokens (never their secrets)."""
    with Session(bootstrap.services().engine) as session:
        rows = tokens.list_tokens(session, include_revoked=include_revoked)
    if as_json:
        for row in rows:
            print(json.dumps(row.model_dump(mode="json")))
        return
    table = Table("name", "role", "created", "by", "expires", "revoked")
    for row in rows:
        table.add_row(
            row.name,
            row.role.value,
            f"{row.created_at:%Y-%m-%d %H:%M}",
            row.created_by,
            f"{row.expires_at:%Y-%m-%d %H:%M}" if row.expires_at else "",
            f"{row.revoked_at:%Y-%m-%d %H:%M} by {row.revoked_by}" if row.revoked_at else "",
        )
    out.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token: Annotated[str, typer.Argument(help="the token's name or id")], by: By = ""
) -> None:
    """Revoke a token: the API refuses it from the next request on (audited)."""
    actor = _actor(by)
    with Session(bootstrap.services().engine) as session, session.begin():
        view = attempt(lambda: tokens.revoke(session, token, actor=actor))
    out.print(f"token {view.name} revoked", highlight=False)
