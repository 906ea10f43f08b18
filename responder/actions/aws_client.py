"""What the boto3 adapters share: building a client, and botocore errors as `ActionError`s.

boto3 is synchronous; the adapters (`aws_iam.Boto3Iam`, `aws_waf.Boto3Waf`) run each call in a
worker thread. A client (unlike a session) is thread-safe, so one serves every thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from responder.actions.registry import ActionError

# Error codes AWS uses when it asks the caller to slow down; a later attempt may succeed.
THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
FORBIDDEN = frozenset({"AccessDenied", "AccessDeniedException", "InvalidClientTokenId"})


def boto3_client(
    service: str,
    *,
    endpoint_url: str | None,
    region: str,
    access_key_id: SecretStr | None,
    secret_access_key: SecretStr | None,
) -> Any:
    """A client for `service`; unset credentials fall back to boto3's chain (env, profile, role).

    boto3 retries throttling a little itself; the runner's retry policy does the rest."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=access_key_id.get_secret_value() if access_key_id else None,
        aws_secret_access_key=secret_access_key.get_secret_value() if secret_access_key else None,
        region_name=region,
    )
    return session.client(
        service,
        endpoint_url=endpoint_url,
        config=Config(
            retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=15
        ),
    )


def translate_error(
    exc: Exception,
    *,
    service: str,
    operation: str,
    codes: Mapping[str, tuple[str, bool]] | None = None,
) -> ActionError:
    """Map botocore failures onto what the runner needs to know: retry or give up.

    `codes` maps a service's own error codes to (ActionError code, retryable); it wins over the
    generic rules (404 not_found, throttling and 5xx retryable, access denied forbidden)."""
    from botocore.exceptions import (
        ClientError,
        HTTPClientError,
        NoCredentialsError,
    )
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = f"{service} {operation} failed: {code}: {error.get('Message', '')}"
        if codes and code in codes:
            ours, retryable = codes[code]
            return ActionError(message, code=ours, retryable=retryable)
        if status == 404:
            return ActionError(message, code="not_found")
        if code in THROTTLING or status >= 500 or status == 429:
            return ActionError(message, code="unavailable", retryable=True)
        if code in FORBIDDEN:
            return ActionError(message, code="forbidden")
        return ActionError(message, code="aws_error")
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return ActionError(f"{service} {operation}: {exc}", code="unavailable", retryable=True)
    if isinstance(exc, NoCredentialsError):
        return ActionError("aws credentials are not configured", code="not_configured")
    return ActionError(f"{service} {operation}: {type(exc).__name__}: {exc}", code="aws_error")
