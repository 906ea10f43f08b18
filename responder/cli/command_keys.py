"""`responder commands keygen`: an issuer's key pair for signing analyst commands."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from responder.cli.console import out
from responder.cli.options import fail
from responder.security.signatures import checked_issuer, fingerprint, generate, public_key

commands_app = typer.Typer(help="Signed analyst commands.", no_args_is_help=True)


@commands_app.command("keygen")
def commands_keygen(
    issuer: Annotated[str, typer.Option("--issuer", help="who signs, e.g. api, slack, cli-alice")],
    out_file: Annotated[
        Path,
        typer.Option("--out", help="env file for the issuer (0o600): its id and private key"),
    ],
) -> None:
    """Make an Ed25519 key pair for an issuer of commands. The private key goes to an env file
    (RESPONDER_COMMANDS__ISSUER, RESPONDER_COMMANDS__SIGNING_KEY) for the process that signs;
    the public key is printed, as the line the workers need (RESPONDER_COMMANDS__ISSUERS)."""
    try:
        checked_issuer(issuer)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if out_file.exists():
        raise fail(f"{out_file} exists: not overwritten")
    private, public = generate()
    fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(
            f"RESPONDER_COMMANDS__ISSUER={issuer}\nRESPONDER_COMMANDS__SIGNING_KEY={private}\n"
        )
    trusted = json.dumps({issuer: [public]})
    out.print(
        f"private key of issuer {issuer} in {out_file} (keep it secret)\n"
        f"public key fingerprint {fingerprint(public_key(public))}; for the workers:\n"
        f"RESPONDER_COMMANDS__ISSUERS='{trusted}'",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
