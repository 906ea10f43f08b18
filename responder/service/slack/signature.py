"""Slack's request signature (`X-Slack-Signature`, `X-Slack-Request-Timestamp`), checked with
slack-sdk's `SignatureVerifier` (HMAC-SHA256 of `v0:<timestamp>:<body>` with the signing secret,
compared in constant time). Pure: the clock is passed in.

The checks run in an order that tells an attacker nothing they did not send: both headers are
there and well-formed, then the signature, then the age (a validly signed request older or newer
than `TOLERANCE_S` is a replay of a captured one, or a clock far off).
"""

from __future__ import annotations

import hmac
import re

from pydantic import SecretStr
from slack_sdk.signature import Clock, SignatureVerifier

TOLERANCE_S = 300  # Slack's own advice, and slack-sdk's fixed window
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^v0=[0-9a-f]{64}$")


class RequestRefused(Exception):
    """A request or payload that is not acted on. `reason` is a short code for the audit log;
    `detail` says more (never the body or the signature); `user` is the Slack user id when the
    payload was verified and names one."""

    def __init__(
        self, reason: str, detail: str, *, status: int = 401, user: str | None = None
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.status = status
        self.user = user


class _At(Clock):
    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


def verify(
    body: bytes, *, timestamp: str | None, signature: str | None, secret: SecretStr, now: float
) -> None:
    """Return if Slack signed `body` within `TOLERANCE_S` of `now`; RequestRefused otherwise."""
    if not timestamp or not signature:
        raise RequestRefused("unsigned", "no X-Slack-Signature or X-Slack-Request-Timestamp")
    if not _TIMESTAMP.match(timestamp) or not _SIGNATURE.match(signature):
        raise RequestRefused("bad_signature", "malformed signature headers")
    verifier = SignatureVerifier(secret.get_secret_value(), clock=_At(now))
    try:
        expected = verifier.generate_signature(timestamp=timestamp, body=body)
    except UnicodeDecodeError:
        raise RequestRefused("bad_signature", "the body is not UTF-8") from None
    if expected is None or not hmac.compare_digest(expected.encode(), signature.encode()):
        raise RequestRefused("bad_signature", "the signature does not match the body")
    age = now - int(timestamp)
    if abs(age) > TOLERANCE_S:
        raise RequestRefused("late", f"signed {int(age)} s ago (more than {TOLERANCE_S} s off)")
    if not verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
        raise RequestRefused("bad_signature", "refused by the SDK's verifier")  # pragma: no cover


def sign(body: bytes, *, timestamp: int, secret: SecretStr) -> str:
    """The signature Slack would send (tests, and tools that replay a request on purpose)."""
    signed = SignatureVerifier(secret.get_secret_value()).generate_signature(
        timestamp=str(timestamp), body=body
    )
    assert signed is not None
    return signed
