"""What the boto3 adapters share: building a client, and botocore errors as `ActionError`s.

boto3 is synchronous; the adapters (`aws_iam.Boto3Iam`, `aws_waf.Boto3Waf`) run each call in a
worker thread. A client (unlike a session) is thread-safe, so one serves every thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self

from pydantic import SecretStr

from responder.actions.registry import ActionError

if TYPE_CHECKING:
    from responder.settings import AwsSettings

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


class Boto3Adapter:
    """A port over one boto3 client (AWS itself, or any endpoint such as a moto server): calls
    run in a thread and their errors become `ActionError`s. Subclasses name the `service`."""

    service = ""

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: SecretStr | None = None,
        secret_access_key: SecretStr | None = None,
    ) -> None:
        self._client: Any = boto3_client(
            self.service,
            endpoint_url=endpoint_url,
            region=region,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
        )
        self.endpoint_url = endpoint_url

    @classmethod
    def from_settings(cls, settings: AwsSettings) -> Self:
        return cls(
            endpoint_url=settings.endpoint_url,
            region=settings.region,
            access_key_id=settings.access_key_id,
            secret_access_key=settings.secret_access_key,
        )

    def __repr__(self) -> str:  # never show credentials
        return f"{type(self).__name__}(endpoint_url={self.endpoint_url!r})"

    async def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(getattr(self._client, operation), **kwargs)
        except Exception as exc:
            raise self.error(exc, operation) from exc

    def error(self, exc: Exception, operation: str) -> ActionError:
        """The service's own mapping of a boto3 error (each service names its codes)."""
        raise NotImplementedError
