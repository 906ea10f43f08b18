"""The `responder` command: its subcommands, their terminal views and the demo."""

from responder.cli.app import app

__all__ = ["app"]
