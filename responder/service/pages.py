"""Opaque cursors for keyset pagination: where the last page ended, under which sort.

A cursor is base64url JSON; it is not a secret and not signed (a forged one only moves the start
of a page the caller may read anyway), but it is validated strictly and bound to its sort.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from responder.service.errors import Invalid

MAX_CURSOR = 512


class Cursor(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sort: str = Field(max_length=32)
    value: datetime | int | None = None
    id: str = Field(max_length=200)


def encode(cursor: Cursor) -> str:
    raw = orjson.dumps(cursor.model_dump(mode="json"))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(text: str, sort: str) -> Cursor:
    """The cursor in `text`; Invalid when it is malformed or was made for another sort."""
    if len(text) > MAX_CURSOR:
        raise Invalid("invalid cursor")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        cursor = Cursor.model_validate_json(raw)
    except (ValueError, binascii.Error, ValidationError):
        raise Invalid("invalid cursor") from None
    if cursor.sort != sort:
        raise Invalid("the cursor belongs to another sort order")
    return cursor
