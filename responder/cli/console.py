"""The CLI's two consoles: results on stdout, messages on stderr."""

from __future__ import annotations

import sys

from rich.console import Console

out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)  # file:line messages must stay on one line
