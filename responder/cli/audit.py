"""`responder audit ...`: verify the hash chain, print its head for an outside anchor."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import Session

from responder import bootstrap
from responder.audit.store import check_anchor, head, verify_chain
from responder.cli.console import out
from responder.cli.options import fail

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[
        str | None,
        typer.Option(
            help="SEQ:HASH printed by `audit head` earlier: also detect deleted newest records"
        ),
    ] = None,
) -> None:
    """Recompute the hash chain; print OK or the first broken record."""
    expected: tuple[int, str] | None = None
    if anchor is not None:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise fail(
                f"--anchor wants SEQ:HASH as `responder audit head` prints it, not {anchor!r}"
            )
        expected = (int(seq), digest)
    with Session(bootstrap.services().engine) as session:
        count, broken = verify_chain(session)
        anchored = check_anchor(session, *expected) if expected else None
    if broken is not None:
        out.print(f"BROKEN at record {broken.seq}: {broken.reason} ({count} records checked)")
        raise typer.Exit(1)
    if anchored is not None:
        out.print(f"BROKEN: {anchored} ({count} records checked)")
        raise typer.Exit(1)
    out.print(
        f"OK: {count} audit records, hash chain intact" + (", anchor holds" if expected else "")
    )


@audit_app.command("head")
def audit_head() -> None:
    """Print the newest record as SEQ:HASH; keep it outside the database (a ticket, a log
    service) and pass it to `audit verify --anchor` to detect truncation."""
    with Session(bootstrap.services().engine) as session:
        newest = head(session)
    if newest is None:
        raise fail("the audit log is empty")
    out.print(f"{newest[0]}:{newest[1]}", highlight=False)
