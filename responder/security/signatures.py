"""Signed messages (pure): an issuer signs a message's exact bytes, a verifier checks who signed.

Used for analyst commands (`responder.commands`): the API, the Slack receiver and a CLI with a
key each sign what they publish with their own Ed25519 key; the worker holds only the public
keys, so a worker (or its settings) that leaks cannot forge a command.

What is signed is `DOMAIN \\n issuer \\n signed_at_ms \\n value`: the value's exact bytes (what
the worker parses is what was signed, no re-encoding to disagree about), the issuer's id and
the signing time, so none of them can be swapped. The command's id (its nonce) and the identity
it acts for (`by`) are inside the value. Issuer, time and signature travel in Kafka headers
(`HEADERS`), so the value stays the command's JSON.

Keys are the raw 32 bytes in base64 (one line, fits an environment variable); `generate`
makes a pair. A verifier takes several public keys per issuer, so a key can be rotated
without a gap (add the new one, switch the issuer, remove the old one).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

DOMAIN = b"responder-command/1"
ISSUER_HEADER = "responder-issuer"
SIGNED_AT_HEADER = "responder-signed-at"
SIGNATURE_HEADER = "responder-signature"
HEADERS = (ISSUER_HEADER, SIGNED_AT_HEADER, SIGNATURE_HEADER)
ISSUER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class BadKey(ValueError):
    """A key setting that is not a base64 Ed25519 key of the expected kind (the text is never
    repeated in the message: it may be a private key)."""


class Refused(ValueError):
    """A message the verifier does not accept; the message says why (never with key material)."""


def _raw(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadKey(f"{what}: not base64") from None
    if len(raw) != 32:
        raise BadKey(f"{what}: an Ed25519 key is 32 bytes, this one is {len(raw)}")
    return raw


def private_key(text: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_raw(text, "signing key"))


def public_key(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_raw(text, "public key"))


def _public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_text(key: Ed25519PrivateKey) -> str:
    """The public half of a private key, base64 (what the verifiers list)."""
    return base64.b64encode(_public_raw(key.public_key())).decode()


def fingerprint(key: Ed25519PublicKey) -> str:
    """sha256 of the raw public key, first 16 hex digits: names a key in logs, reveals nothing."""
    return hashlib.sha256(_public_raw(key)).hexdigest()[:16]


def generate() -> tuple[str, str]:
    """A new key pair as base64 text: (private key, public key)."""
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode(), public_text(key)


def checked_issuer(issuer: str) -> str:
    if not ISSUER_ID.match(issuer):
        raise ValueError(f"issuer id {issuer!r}: 1-64 of A-Z a-z 0-9 . _ -, starting alphanumeric")
    return issuer


def signing_input(issuer: str, signed_at_ms: int, value: bytes) -> bytes:
    return b"\n".join((DOMAIN, issuer.encode(), str(signed_at_ms).encode(), value))


@dataclass(frozen=True)
class Signer:
    """Signs as one issuer (the process's own key; never logged: the repr shows the issuer)."""

    issuer: str
    key: Ed25519PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        checked_issuer(self.issuer)

    def headers(self, value: bytes, *, now_ms: int) -> list[tuple[str, bytes]]:
        signature = self.key.sign(signing_input(self.issuer, now_ms, value))
        return [
            (ISSUER_HEADER, self.issuer.encode()),
            (SIGNED_AT_HEADER, str(now_ms).encode()),
            (SIGNATURE_HEADER, base64.b64encode(signature)),
        ]


@dataclass(frozen=True)
class Signed:
    """What a valid signature proves: this issuer signed these bytes at this time."""

    issuer: str
    signed_at_ms: int
    key: str  # the fingerprint of the key that verified


def _header(headers: Sequence[tuple[str, bytes]], name: str) -> str:
    found = [value for key, value in headers if key == name]
    if not found:
        raise Refused(f"unsigned: no {name} header")
    if len(found) > 1:
        raise Refused(f"{name} header given {len(found)} times")
    try:
        return found[0].decode("ascii")
    except (UnicodeDecodeError, AttributeError):
        raise Refused(f"{name} header is not ASCII") from None


@dataclass(frozen=True)
class Verifier:
    """The issuers it trusts (id → public keys) and how old a signature may be."""

    keys: Mapping[str, tuple[Ed25519PublicKey, ...]]
    max_age_ms: int
    max_skew_ms: int

    @classmethod
    def of(
        cls, issuers: Mapping[str, Iterable[str]], *, max_age_s: float, max_skew_s: float
    ) -> Verifier:
        keys = {
            checked_issuer(issuer): tuple(public_key(text) for text in texts)
            for issuer, texts in issuers.items()
        }
        return cls(keys, int(max_age_s * 1000), int(max_skew_s * 1000))

    def verify(self, value: bytes, headers: Sequence[tuple[str, bytes]], *, now_ms: int) -> Signed:
        """Signed, or Refused with the reason (unsigned, unknown issuer, bad signature, expired,
        from the future). Replays are the caller's: it knows which nonces it has seen."""
        issuer = _header(headers, ISSUER_HEADER)
        at_text = _header(headers, SIGNED_AT_HEADER)
        signature_text = _header(headers, SIGNATURE_HEADER)
        keys = self.keys.get(issuer)
        if not keys:
            raise Refused(f"unknown issuer {issuer[:64]!r}")
        if not at_text.isdigit() or len(at_text) > 15:
            raise Refused("signing time is not a millisecond timestamp")
        signed_at = int(at_text)
        try:
            signature = base64.b64decode(signature_text, validate=True)
        except (binascii.Error, ValueError):
            raise Refused("signature is not base64") from None
        message = signing_input(issuer, signed_at, value)
        for key in keys:
            try:
                key.verify(signature, message)
            except InvalidSignature:
                continue
            break
        else:
            raise Refused(f"bad signature for issuer {issuer!r}")
        if signed_at < now_ms - self.max_age_ms:
            raise Refused(f"expired: signed {(now_ms - signed_at) / 1000:.0f} s ago")
        if signed_at > now_ms + self.max_skew_ms:
            raise Refused(f"signed {(signed_at - now_ms) / 1000:.0f} s in the future")
        return Signed(issuer, signed_at, fingerprint(key))
