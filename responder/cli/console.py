"""The CLI's two consoles and its settings loader, shared by every command module."""

from __future__ import annotations

import sys

from rich.console import Console

from responder.logs import configure
from responder.settings import Settings

out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)  # file:line messages must stay on one line


def load_settings() -> Settings:
    """Settings from the environment, with logging configured from them."""
    settings = Settings()
    configure(settings.log_level, settings.log_format)
    return settings
