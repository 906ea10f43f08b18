"""The REST API as a CLI backend (`--api URL`)."""

from __future__ import annotations


class RemoteError(Exception):
    """The API refused or failed (its problem detail, or why it could not be reached)."""
