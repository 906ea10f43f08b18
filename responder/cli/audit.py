"""`responder audit ...`: verify the hash chain, print its head for an outside anchor, export it
signed and verify an export offline."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from responder import bootstrap
from responder.audit import export as X
from responder.audit.store import check_anchor, head, records_since, verify_chain
from responder.cli.console import err, out
from responder.cli.options import fail
from responder.text.duration import parse_duration

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


PassphraseEnv = Annotated[
    str | None,
    typer.Option(
        "--passphrase-env",
        help="name of an environment variable holding the private key's passphrase",
    ),
]


def _passphrase(variable: str | None) -> bytes | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        raise fail(f"environment variable {variable} is not set")
    return value.encode()


def _since(value: str | None) -> datetime | None:
    """`7d` (that long ago), a date (midnight UTC) or an RFC 3339 time with its offset."""
    if value is None:
        return None
    try:
        return datetime.now(UTC) - parse_duration(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise fail(f"--since wants 7d, 2026-11-25 or 2026-11-25T09:00:00Z, not {value!r}") from None
    if len(value) == 10:  # a date
        return moment.replace(tzinfo=UTC)
    if moment.tzinfo is None:
        raise fail("--since: give the time with its offset (e.g. Z or +01:00)")
    return moment


@audit_app.command("keygen")
def audit_keygen(
    out_file: Annotated[
        Path, typer.Option("--out", help="private key file; the public key goes to FILE.pub")
    ],
    passphrase_env: PassphraseEnv = None,
) -> None:
    """Make an Ed25519 key pair for `audit export --sign` (PEM; the private key 0o600).
    `openssl genpkey -algorithm ed25519 -out key.pem` and
    `openssl pkey -in key.pem -pubout -out key.pem.pub` make the same."""
    public_file = out_file.with_name(out_file.name + ".pub")
    if out_file.exists() or public_file.exists():
        raise fail(f"{out_file} or {public_file} exists: not overwritten")
    private, public = X.generate_key(_passphrase(passphrase_env))
    fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
    public_file.write_bytes(public)
    key = X.load_public_key(public)
    out.print(
        f"private key {out_file} (keep it secret), public key {public_file}\n"
        f"key sha256 {X.key_sha256(key)}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@audit_app.command("export")
def audit_export(
    sign: Annotated[Path, typer.Option("--sign", help="Ed25519 private key (PEM)")],
    since: Annotated[
        str | None,
        typer.Option(help="from the first record stamped at or after: 7d, a date or a time"),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--out", help="write here (default: stdout)")
    ] = None,
    passphrase_env: PassphraseEnv = None,
) -> None:
    """Write the audit records (from --since to the newest) with their chain as JSON Lines,
    and an Ed25519 signature over the head as the last line."""
    if not sign.is_file():
        raise fail(f"{sign}: no such key file")
    try:
        key = X.load_private_key(sign.read_bytes(), _passphrase(passphrase_env))
    except X.BadKey as exc:
        raise fail(f"{sign}: {exc}") from None
    start = _since(since)
    with Session(bootstrap.services().engine) as session:
        lines = X.export_lines(
            records_since(session, start), key=key, exported_at=datetime.now(UTC), since=start
        )
        if output is None:
            for line in lines:
                sys.stdout.write(line + "\n")
            return
        with output.open("x", encoding="utf-8") as handle:
            count = 0
            for line in lines:
                handle.write(line + "\n")
                count += 1
    err.print(f"{count - 1} audit records exported to {output}, signed", highlight=False)


@audit_app.command("verify-export")
def audit_verify_export(
    file: Annotated[Path, typer.Argument(help="an `audit export` file")],
    pubkey: Annotated[Path, typer.Option("--pubkey", help="the signer's public key (PEM)")],
) -> None:
    """Verify an export offline (no database): every hash and link, and the signature over
    the head; exit 1 naming what was edited, removed, reordered or appended."""
    try:
        key = X.load_public_key(pubkey.read_bytes())
    except (OSError, X.BadKey) as exc:
        raise fail(f"{pubkey}: {exc}") from None
    try:
        with file.open(encoding="utf-8") as handle:
            check = X.verify_export(handle, key)
    except OSError as exc:
        raise fail(f"{file}: {exc}") from None
    if check.ok:
        head_ = check.head or {}
        out.print(
            f"OK: {check.count} audit records, chain intact, signed head "
            f"{head_.get('seq')}:{head_.get('hash')} (key sha256 {X.key_sha256(key)})",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        return
    out.print(f"FAILED: {file}", highlight=False, markup=False, soft_wrap=True)
    for problem in check.problems:
        out.print(f"  - {problem}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(1)
