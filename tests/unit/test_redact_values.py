"""Masking by value (issue 8, item 4): the secret shapes of `security.redact.VALUE_PATTERNS`
are masked wherever they appear in text, what is not secret is kept, and masking an attacker's
text stays linear (RE2)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from responder.security.redact import (
    REDACTED,
    is_secret_key,
    mask_text,
    remember,
    scrub,
    secrets_in,
)

SHAPES = [
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEsecret\n-----END RSA PRIVATE KEY-----", "MIIEsecret"),
    ("cut -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA", "b3BlbnNzaC1rZXktdjEAAAA"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlc2ln end", "c2lnbmF0dXJlc2ln"),
    ("cut eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn", "eyJzdWIiOiJhIn"),
    ("postgresql://admin:hunter2pw@db:5432/x", "hunter2pw"),
    ("https://ghtoken123@github.example/x.git", "ghtoken123"),
    ("GET https://a.example/cb?code=authcode99&state=1", "authcode99"),
    ("https://b.example/x?X-Amz-Signature=abcdef0123&X-Amz-Date=1", "abcdef0123"),
    ("https://b.example/x?X-Amz-Credential=AKIAEXAMPLE%2F2026", "AKIAEXAMPLE%2F2026"),
    ("https://c.example/?access_token=tok987654&x=1", "tok987654"),
    ("https://d.example/?sig=sig123456", "sig123456"),
    ("Authorization: Basic YWxpY2U6cGFzcw==", "YWxpY2U6cGFzcw=="),
    ('{"Authorization": "Bearer abc.def.ghi123"}', "abc.def.ghi123"),
    ("Cookie: session=sess12345; theme=dark", "sess12345"),
    ("Set-Cookie: sid=abc123456; HttpOnly", "abc123456"),
    ("token ghp_0123456789abcdefghijABCDEFGHIJ012345", "ghp_0123456789abcdefghijABCDEFGHIJ012345"),
    ("pat github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "github_pat_11ABCDEFG0123456789"),
    ("slack xoxb-1234567890-abcdefghij", "xoxb-1234567890-abcdefghij"),
    ("https://hooks.slack.com/services/T0001/B0001/XXXXXXXXXXXX", "XXXXXXXXXXXX"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
    ("session FwoGZXIvYXdzEJr//////////wEaDGV4YW1wbGV0b2tlbg", "FwoGZXIvYXdzEJr"),
    ("hf hf_abcdefghijklmnopqrstuvwxyzABCDEF", "hf_abcdefghijklmnopqrstuvwxyzABCDEF"),
    ("openai sk-proj-abcdefghijklmnop0123456789", "sk-proj-abcdefghijklmnop"),
    ("google AIzaSyA0123456789abcdefghijklmnopqrstuv", "AIzaSyA0123456789"),
    ("oauth ya29.a0AfH6SMBx0123456789abcdef", "ya29.a0AfH6SMBx"),
    ('HTTP 500: {"error": "x", "client_secret": "cs-0123456"}', "cs-0123456"),
    ("password=s3cr3t&user=bob", "s3cr3t"),
]


@pytest.mark.parametrize(("text", "secret"), SHAPES)
def test_secret_shapes_are_masked_in_text(text: str, secret: str) -> None:
    masked = mask_text(text)
    assert secret not in masked
    assert REDACTED in masked


@pytest.mark.parametrize(
    "text",
    [
        "key AKIAIOSFODNN7EXAMPLE deactivated for user ci-bot",  # an access key id is kept
        "model registry/fraud@champion moved to version 7",
        "https://mlflow.example/#/models/fraud/versions/7",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "the title is fine: nothing to hide here",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert mask_text(text) == text


def test_keys_in_camel_case_and_headers_count() -> None:
    for key in ("accessToken", "SecretAccessKey", "clientSecret", "X-Api-Key", "Set-Cookie",
                "private_key", "Cookie", "refresh_token", "passphrase"):  # fmt: skip
        assert is_secret_key(key), key
    for key in ("access_key_id", "AccessKeyId", "tokens", "user", "kid", "status"):
        assert not is_secret_key(key), key


def test_scrub_masks_by_key_and_by_value_at_any_depth() -> None:
    data = {
        "output": {"json": {"access_token": "opaque", "kid": "k1"}},
        "items": [{"url": "https://x.example/?token=t1234567"}],
        "error": "Bearer abcdefgh123",
    }
    assert scrub(data) == {
        "output": {"json": {"access_token": REDACTED, "kid": "k1"}},
        "items": [{"url": "https://x.example/?token=***"}],
        "error": "Bearer ***",
    }


def test_a_secret_masked_by_key_is_masked_wherever_it_turns_up() -> None:
    known: set[str] = set()
    remember(known, {"json": {"access_token": "opaque-0123456789", "kid": "k1"}})
    assert known == {"opaque-0123456789"}
    assert mask_text("see opaque-0123456789 now", known) == "see *** now"
    assert scrub({"note": "x opaque-0123456789"}, known) == {"note": "x ***"}
    assert secrets_in({"token": "short"}) == set()  # too short to mask as text elsewhere


def test_a_validation_error_echoing_a_secret_field_is_masked() -> None:
    class Params(BaseModel):
        api_key: int
        note: int

    with pytest.raises(ValidationError) as info:
        Params.model_validate({"api_key": "opaque-key-123", "note": "plain-words"})
    masked = mask_text(str(info.value))
    assert "opaque-key-123" not in masked
    assert "input_value=***" in masked
    assert "plain-words" in masked  # not a secret field: kept


def test_masking_hostile_text_is_linear() -> None:
    """Long runs of the characters the patterns look for (no time assertion: Python's `re`
    would take minutes on these; RE2 finishes)."""
    for text in ("a" * 500_000 + "=", "eyJ" + "a" * 500_000, "://" + "a" * 500_000,
                 "token" * 100_000 + ":", "-----BEGIN RSA PRIVATE KEY-----" + "x" * 500_000):  # fmt: skip
        assert len(mask_text(text)) <= len(text)
