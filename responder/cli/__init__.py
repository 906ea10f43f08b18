"""The `responder` command: its subcommands, their terminal views and the demo."""

import sys

from responder.cli.app import app
from responder.storage.database import SchemaNotCurrent

__all__ = ["app", "main"]


def main() -> None:
    """The `responder` command: a database at another revision is a one-line error, whatever
    the subcommand (the worker says it the same way)."""
    try:
        app()
    except SchemaNotCurrent as exc:
        print(f"Error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
