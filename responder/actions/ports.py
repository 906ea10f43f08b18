"""The ports actions talk through: one Protocol per integration, the values they pass, and `Ports`.

Every adapter (`aws_iam.Boto3Iam`, `mlflow.MlflowRegistry`, `http.AiohttpAdapter`,
`slack.SlackWebAdapter`, `incidents.store.SqlIncidents`) and every fake in `tests/support/fakes/`
implements a Protocol of this module; the actions only see these types. This module imports no
adapter and not the registry, so every other module of `responder.actions` can import it.

`responder.bootstrap.ports(settings)` builds the real adapters; unit tests hand fakes. A port left
as None means "not configured": the action decides whether that is an error or a logged no-op
(Slack without a token is a no-op that is audited as not sent).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from responder.incidents.model import IncidentEdit

# --- Slack ---------------------------------------------------------------------------------------


class SlackPort(Protocol):
    """Post and edit messages; both return at least `{"channel": <id>, "ts": <message ts>}`."""

    @property
    def default_channel(self) -> str: ...

    async def post_message(
        self, *, channel: str, text: str, blocks: list[dict[str, Any]]
    ) -> Mapping[str, Any]: ...

    async def update_message(
        self, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]
    ) -> Mapping[str, Any]: ...


# --- AWS IAM -------------------------------------------------------------------------------------

KeyStatus = Literal["Active", "Inactive"]


class AccessKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    user_name: str
    access_key_id: str
    status: KeyStatus


class IamPort(Protocol):
    async def get_access_key(self, *, access_key_id: str, user_name: str | None) -> AccessKey:
        """The key and its owner; ActionError(code="not_found") when IAM does not know it."""
        ...

    async def set_access_key_status(
        self, *, user_name: str, access_key_id: str, status: KeyStatus
    ) -> None: ...

    async def delete_access_key(self, *, user_name: str, access_key_id: str) -> None: ...


# --- AWS WAFv2 ----------------------------------------------------------------------------------

IpVersion = Literal["IPV4", "IPV6"]


class IpSet(BaseModel):
    """A WAFv2 IP set as `GetIPSet` returns it, with the lock token an update must present."""

    model_config = ConfigDict(frozen=True)

    name: str
    ip_set_id: str
    ip_version: IpVersion
    addresses: tuple[str, ...]
    lock_token: str
    description: str | None = None


class WafPort(Protocol):
    async def get_ip_set(self, *, name: str, ip_set_id: str) -> IpSet:
        """The set and its lock token; ActionError(code="not_found") when WAF does not know it."""
        ...

    async def update_ip_set(self, *, ip_set: IpSet, addresses: list[str]) -> None:
        """Replace the set's addresses, presenting `ip_set.lock_token`; ActionError(code=
        "lock_conflict") when the set changed since it was read."""
        ...


# --- model registry (MLflow) ---------------------------------------------------------------------


class ModelVersionInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: str
    tags: dict[str, str] = Field(default_factory=dict)
    created_at: datetime


class ArtifactDigest(BaseModel):
    """One file of a model version's artifacts; `sha256` None with a `note` when not hashed."""

    model_config = ConfigDict(frozen=True)

    path: str
    size: int | None = None
    sha256: str | None = None
    note: str | None = None


class DatasetDigest(BaseModel):
    """A dataset the version's training run logged as an input (MLflow `log_input`)."""

    model_config = ConfigDict(frozen=True)

    name: str
    digest: str
    source_type: str | None = None
    source: str | None = None
    context: str | None = None  # e.g. training, evaluation


class VersionArtifacts(BaseModel):
    """What a model version is made of: where it came from, its files and its datasets."""

    model_config = ConfigDict(frozen=True)

    version: str
    source: str | None = None
    run_id: str | None = None
    artifacts: list[ArtifactDigest] = Field(default_factory=list)
    datasets: list[DatasetDigest] = Field(default_factory=list)
    truncated: bool = False  # more files than `max_files`


class ModelRegistryPort(Protocol):
    async def alias_version(self, *, name: str, alias: str) -> str | None:
        """The version the alias points at; None when unset. not_found if no such model."""
        ...

    async def set_alias(self, *, name: str, alias: str, version: str) -> None: ...

    async def versions(self, *, name: str) -> list[ModelVersionInfo]: ...

    async def model_tags(self, *, name: str) -> dict[str, str]: ...

    async def set_model_tag(self, *, name: str, key: str, value: str) -> None: ...

    async def set_version_tag(self, *, name: str, version: str, key: str, value: str) -> None: ...

    async def delete_version_tag(self, *, name: str, version: str, key: str) -> None: ...

    async def version_datasets(self, *, name: str, version: str) -> list[tuple[str, str]] | None:
        """(name, digest) of each dataset the version's source run logged as an input; None
        when its lineage is unknown (no source run, the run is gone, too many inputs)."""

    async def aliases(self, *, name: str) -> dict[str, str]:
        """Every alias of the model and the version it points at."""
        ...

    async def artifacts(
        self, *, name: str, version: str, max_bytes: int, max_files: int
    ) -> VersionArtifacts:
        """The version's artifact files with the sha256 of each (files over `max_bytes` are
        listed unhashed) and the digests of the datasets its run logged."""
        ...


# --- HTTP ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""
    json: Any = None  # the body parsed, when it is complete JSON
    truncated: bool = False  # the body was longer than the adapter keeps


class HttpPort(Protocol):
    @property
    def default_timeout_s(self) -> float: ...

    async def request(
        self,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        json: Any | None,
        timeout_s: float,
    ) -> HttpResponse: ...


# --- incidents -----------------------------------------------------------------------------------


class IncidentPort(Protocol):
    async def update(
        self, incident_id: str, edit: IncidentEdit, *, actor: str
    ) -> Mapping[str, Any]:
        """Apply the edit (as `incidents.store.update_incident` does); the incident's new
        `incident_id`, `status`, `severity` and `assignee`."""
        ...


# --- evidence ------------------------------------------------------------------------------------


class EvidencePort(Protocol):
    async def snapshot(
        self, incident_id: str, *, actor: str, key: str | None = None, reason: str | None = None
    ) -> Mapping[str, Any]:
        """Collect the incident's evidence into a write-once bundle and record its manifest hash
        in the audit chain; `key` makes a retry find the bundle it already wrote. Returns at
        least `incident_id`, `bundle`, `manifest_sha256`, `location`."""
        ...


# --- the bundle ----------------------------------------------------------------------------------


@dataclass
class Ports:
    slack: SlackPort | None = None
    iam: IamPort | None = None
    waf: WafPort | None = None
    models: ModelRegistryPort | None = None
    http: HttpPort | None = None
    incidents: IncidentPort | None = None
    evidence: EvidencePort | None = None
