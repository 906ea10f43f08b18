"""`responder audit ...`: verify the hash chain, print its head for an outside anchor, export it
signed and verify an export offline."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from aiokafka.errors import KafkaError
from sqlalchemy import Engine, inspect, make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from responder import bootstrap
from responder.audit import export as X
from responder.audit.anchors import Anchor
from responder.audit.store import (
    AuditRecord,
    check_anchor,
    check_anchors,
    head,
    records_since,
    unkeyed_count,
    verify_chain,
)
from responder.cli.console import err, out
from responder.cli.options import fail
from responder.settings import Settings
from responder.streams.anchors import read_file, read_topic
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
    anchor_file: Annotated[
        Path | None,
        typer.Option(
            help="anchor file the worker appends to (default RESPONDER_AUDIT__ANCHOR_FILE)"
        ),
    ] = None,
    kafka_anchors: Annotated[
        bool,
        typer.Option(
            help="also check the anchors on the Kafka topic RESPONDER_AUDIT__ANCHOR_TOPIC"
        ),
    ] = False,
) -> None:
    """Recompute the chain with the chain keys and check it against its anchors; print OK or
    what is broken: a record that does not match (appended or edited without the key), a
    record gone after an anchor (truncated), a hash that is not the anchored one (re-chained)."""
    expected: tuple[int, str] | None = None
    if anchor is not None:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise fail(
                f"--anchor wants SEQ:HASH as `responder audit head` prints it, not {anchor!r}"
            )
        expected = (int(seq), digest)
    settings = bootstrap.load_settings()
    anchors, skipped, sources = _anchors(settings, anchor_file, kafka_anchors)
    engine = _existing_database(settings)
    with Session(engine) as session:
        count, broken = verify_chain(session)
        anchored = check_anchor(session, *expected) if expected else None
        checked = check_anchors(session, anchors, skipped) if sources else None
        unkeyed = unkeyed_count(session)
    if broken is not None:
        out.print(f"BROKEN at record {broken.seq}: {broken.reason} ({count} records checked)")
        raise typer.Exit(1)
    problems = ([anchored] if anchored else []) + (checked.problems if checked else [])
    if problems:
        for problem in problems:
            out.print(f"BROKEN: {problem} ({count} records checked)", highlight=False)
        raise typer.Exit(1)
    out.print(
        f"OK: {count} audit records, hash chain intact" + (", anchor holds" if expected else ""),
        highlight=False,
    )
    if unkeyed:
        out.print(
            f"note: {unkeyed} records are unkeyed (legacy SHA-256): a database writer could have "
            "rewritten them; set RESPONDER_AUDIT__KEY so new records are keyed",
            highlight=False,
        )
    if checked is not None:
        newest = checked.newest
        out.print(
            f"anchors ({', '.join(sources)}): {checked.checked} checked"
            + (f", newest at record {newest.seq}" if newest else ", none written yet")
            + (f"; {checked.unanchored} records after it are not anchored yet" if newest else "")
            + (f"; {checked.skipped} entries were not anchors" if checked.skipped else ""),
            highlight=False,
        )


def _existing_database(settings: Settings) -> Engine:
    """The configured database, refused when it does not exist or holds no audit log (never
    create an empty one and call it intact)."""
    url = make_url(settings.database.url)
    if url.get_backend_name() == "sqlite":
        path = url.database
        if not path or path == ":memory:" or not Path(path).is_file():
            raise fail(f"no database at {path or ':memory:'}: nothing to verify")
    engine = bootstrap.database(settings, migrate_sqlite=False)
    try:
        present = inspect(engine).has_table(AuditRecord.__tablename__)
    except OperationalError as exc:
        raise fail(f"cannot open the database: {type(exc.orig or exc).__name__}") from None
    if not present:
        raise fail("the database has no audit log: not a responder database, or not migrated")
    return engine


def _anchors(
    settings: Settings, anchor_file: Path | None, kafka: bool
) -> tuple[list[Anchor], int, list[str]]:
    anchors: list[Anchor] = []
    skipped = 0
    sources: list[str] = []
    path = anchor_file or settings.audit.anchor_file
    if path is not None:
        try:
            anchors, skipped = read_file(path)
        except FileNotFoundError:
            if anchor_file is not None:  # asked for by name: it must be there
                raise fail(f"anchor file {path}: no such file") from None
            # configured, not written yet: the worker creates it with its first anchor
        except OSError as exc:
            raise fail(f"anchor file {path}: {exc.strerror or exc}") from None
        sources.append(str(path))
    if kafka:
        topic = settings.audit.anchor_topic
        if topic is None:
            raise fail("--kafka-anchors: RESPONDER_AUDIT__ANCHOR_TOPIC is not set")
        try:
            found, bad = asyncio.run(read_topic(settings.kafka, topic))
        except (KafkaError, TimeoutError, OSError) as exc:
            raise fail(f"cannot read the anchors from {topic}: {type(exc).__name__}") from None
        anchors, skipped, sources = anchors + found, skipped + bad, [*sources, topic]
    return anchors, skipped, sources


@audit_app.command("chain-key")
def audit_chain_key() -> None:
    """Print a new random chain key (32 bytes, URL-safe base64) for RESPONDER_AUDIT__KEY.
    Keep it in the worker's secret store, never in the database; to rotate, see the README."""
    out.print(secrets.token_urlsafe(32), highlight=False, markup=False)


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
