"""All configuration, from environment variables prefixed `RESPONDER_` (nested with `__`).

Examples: `RESPONDER_KAFKA__BOOTSTRAP_SERVERS=kafka:9092`,
`RESPONDER_DATABASE__URL=postgresql+psycopg://...`, `RESPONDER_RULES_DIR=/etc/responder/rules`.
Secrets are `SecretStr` so they never appear in logs or reprs.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Topics(BaseModel):
    events: str = "responder.events"
    dlq: str = "responder.dlq"
    correlate: str = "responder.correlate"
    changelog: str = "responder.correlate-changelog"
    incidents: str = "responder.incidents"
    commands: str = "responder.commands"
    reports: str = (
        "responder.reports"  # raw tool reports, converted into events (streams/reports.py)
    )


class KafkaSettings(BaseModel):
    """Where Kafka is and how every client (stages, faust, admin, API, CLI) authenticates to it:
    `security.kafka.client_options` turns these into the clients' options, in one place."""

    bootstrap_servers: str = "127.0.0.1:9092"
    partitions: int = Field(default=4, ge=1, description="partitions of the topics we create")
    replication_factor: int = Field(default=1, ge=1)
    group_prefix: str = "responder"
    topics: Topics = Topics()
    client_id: str = "responder"
    data_dir: Path = Field(
        default=Path(".responder"),
        description="where the worker's faust app keeps its directory (`<group_prefix>-worker-data`;"
        " its tables are in memory, so nothing there needs keeping)",
    )
    instance_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$",
        description="a stable name unique to this worker (e.g. its pod name): static group "
        "membership, so a restarted worker gets its partitions back at once",
    )
    session_timeout_s: float = Field(
        default=10.0,
        ge=6,
        le=300,
        description="how long a worker that stopped heartbeating keeps its partitions",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_cafile: Path | None = Field(
        default=None, description="CA bundle the brokers' certificates are checked against"
    )
    ssl_certfile: Path | None = Field(default=None, description="client certificate (mTLS)")
    ssl_keyfile: Path | None = Field(default=None, description="its private key (mTLS)")
    ssl_key_password: SecretStr | None = None
    ssl_check_hostname: bool = True
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None

    @model_validator(mode="after")
    def _complete(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL_") and (
            not self.sasl_username or self.sasl_password is None
        ):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_username and sasl_password"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together (mTLS)")
        return self


class CommandSettings(BaseModel):
    """Signed analyst commands (`responder.commands`, `security.signatures`): a process that
    sends commands (API, Slack receiver, CLI) signs them as `issuer` with `signing_key`; the
    worker applies only those signed by a key listed in `issuers`, within `max_age_s`."""

    issuer: str | None = Field(default=None, description="this process's issuer id, e.g. api")
    signing_key: SecretStr | None = Field(
        default=None, description="its Ed25519 private key, base64 (`responder commands keygen`)"
    )
    issuers: dict[str, list[str]] = Field(
        default_factory=dict,
        description="the worker's trusted issuers: id → Ed25519 public keys, base64 "
        "(more than one while a key is rotated)",
    )
    identities: dict[str, list[str]] = Field(
        default_factory=dict,
        description="who each issuer may act for (`by`, fnmatch patterns), e.g. "
        'api: ["token:*", "slack:*"]; an issuer not listed acts only as itself (by = its id)',
    )
    max_age_s: float = Field(
        default=300.0, gt=0, le=86_400, description="refuse commands signed longer ago"
    )
    max_skew_s: float = Field(
        default=30.0, ge=0, le=3600, description="accept signing times this far in the future"
    )

    @field_validator("issuers", "identities", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _pair(self) -> CommandSettings:
        if (self.issuer is None) != (self.signing_key is None):
            raise ValueError("commands.issuer and commands.signing_key go together")
        return self


class CorrelationSettings(BaseModel):
    commit_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="flush changed window state, then commit offsets (a crash replays at most this much)",
    )
    allowed_lateness_s: float = Field(
        default=600.0,
        ge=0,
        description="how far behind the slowest active input partition an event may be",
    )
    idle_partition_s: float = Field(
        default=300.0,
        gt=0,
        description="an input partition that has not advanced while others did for this long "
        "stops holding lateness back",
    )
    max_clock_skew_s: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description="event-time progress (what lateness and pruning are judged by) is never "
        "taken further than this past the worker's wall clock: a future-dated event, by mistake "
        "or by an attacker, is still correlated but cannot make every other event late",
    )
    max_batch: int = Field(default=5000, ge=1, description="records per consumer fetch")
    max_groups_per_rule: int = Field(
        default=100_000,
        ge=1,
        description="live groups a rule may have per correlation partition; beyond, the "
        "oldest (in event time) are evicted",
    )


class WorkerSettings(BaseModel):
    processes: int | None = Field(
        default=None,
        ge=1,
        description="worker processes `responder worker` runs, each with every chosen stage "
        "(unset: every stage as a process per stage group, or chosen stages once per core)",
    )
    gather_bytes: int = Field(
        default=2048,
        ge=1,
        le=1024 * 1024,
        description="the broker answers the ingest stage's fetch once this many bytes of events "
        "are there (or after gather_ms): a quiet stream is read a few events at a time, so each "
        "stage pays its per-fetch cost once for several (under an eighth of this in gather_ms, "
        "with gather_window_ms set, each event is read at once); 1: every event at once",
    )
    gather_ms: int = Field(
        default=50,
        # at least 10: a fetch the broker answers at once, empty, is sent again at once (an idle
        # stream would spin); at most 250: a salvage's seek waits out the fetch in flight and one
        # more within its own deadline (streams/salvage.py WAIT_MS)
        ge=10,
        le=250,
        description="the longest the broker holds the ingest stage's fetch for gather_bytes: the "
        "most latency a quiet stream gains (a busy one fills gather_bytes at once)",
    )
    gather_window_ms: int = Field(
        default=10,
        ge=0,
        le=250,
        description="a busy stream is read about one fetch per window: the ingest fetch waits "
        "for the bytes the recent rate brings in this long (at least gather_bytes, at most "
        "1 MiB, never past gather_ms), so each stage's per-fetch cost is paid once for more "
        "events as the load grows; 0: always gather_bytes",
    )
    sink_standby_backlog: int = Field(
        default=0,
        ge=0,
        le=10**9,
        description="a sink with this set stays out of the sinks' consumer group until the "
        "incidents not yet stored reach this many (or some have waited 15 s with nothing "
        "stored), and leaves again once they stayed under a quarter of it for a minute; the "
        "default layout sets it on its extra sinks (a sink per core past the first) and 0 on "
        "its other processes, so a quiet stream is stored by one; set by hand, e.g. a spare "
        "sink elsewhere; ignored with kafka.instance_id (a static member never leaves); 0: "
        "always a member",
    )
    max_evidence: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="events an incident keeps as evidence (full bodies, the first ones); later "
        "ones are counted (event_count, last_seen) and each change's audit record names those "
        "it did not keep: every change of an incident costs the sink the same however many "
        "events flood it",
    )
    native: bool = Field(
        default=True,
        description="the ingest stage validates and routes, and the correlation stage keeps "
        "its window state and correlates, with the compiled path (responder-native, built from "
        "native/ by `make install`) where it is installed; false: the Python path (the same "
        "results, about 4x the ingest CPU and 2x the correlation CPU)",
    )


class DatabaseSettings(BaseModel):
    url: str = "sqlite:///responder.db"
    echo: bool = False


class SlackSettings(BaseModel):
    """Posting (bot token) and button clicks: over Socket Mode (`responder slack`, app-level
    token) or the signed request URL `POST /v1/slack/actions` of `responder api`."""

    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = Field(
        default=None, description="verifies POST /v1/slack/actions (mode http)"
    )
    app_token: SecretStr | None = Field(
        default=None, description="xapp-... with connections:write (mode socket)"
    )
    mode: Literal["socket", "http"] = Field(
        default="http", description="how button clicks reach responder"
    )
    channel: str = "#secops-incidents"
    base_url: str | None = Field(
        default=None, description="Slack Web API base, e.g. a local test server's /api/"
    )
    team_id: str | None = Field(
        default=None,
        description="the workspace whose users may click (others, e.g. Slack Connect guests, "
        "are refused); unset: any",
    )
    analysts: list[str] = Field(
        default_factory=list,
        description="who may use the buttons at all (Slack ids, responder users, group:NAME); "
        "empty: everyone who can see the message",
    )
    users: dict[str, str] = Field(
        default_factory=dict, description="Slack user id → responder user name"
    )
    groups: dict[str, list[str]] = Field(
        default_factory=dict,
        description="approver groups: name → Slack user ids or responder users",
    )
    apply_wait_s: float = Field(
        default=10.0, gt=0, le=60, description="how long a click waits for the worker to apply it"
    )


class AwsSettings(BaseModel):
    endpoint_url: str | None = Field(default=None, description="e.g. a local moto server")
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None


class MlflowSettings(BaseModel):
    tracking_uri: str | None = Field(default=None, description="unset: MLflow is not configured")
    registry_uri: str | None = None


class HttpSettings(BaseModel):
    allowed_hosts: list[str] = Field(
        default_factory=list, description="http.request refuses every host not listed here"
    )
    timeout_s: float = Field(default=10.0, gt=0)


class PlaybookSettings(BaseModel):
    dir: Path = Path("playbooks")
    kill_switch: bool = Field(default=False, description="turn every playbook run into a dry run")
    approval_timeout_s: float = Field(default=3600.0, gt=0)
    lease_s: float = Field(
        default=30.0, gt=0, description="a run whose worker died is resumed after this long"
    )
    poll_s: float = Field(default=1.0, gt=0, description="how often the runner looks for work")
    vars: dict[str, Any] = Field(
        default_factory=dict,
        description="values playbook templates read as `vars` (JSON, e.g. a ticket URL)",
    )


class AssetSettings(BaseModel):
    dir: Path = Field(default=Path("assets"), description="declared assets (*.yaml)")
    sync_interval_s: float = Field(
        default=300.0, gt=0, description="how often the registry and the files are synced"
    )
    refresh_s: float = Field(
        default=30.0,
        gt=0,
        description="how often the worker reloads its in-memory graph (lineage, blast radius)",
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="the secret of the MLflow webhook (unset: refuse deliveries)"
    )
    webhook_tolerance_s: float = Field(
        default=300.0, gt=0, description="refuse deliveries whose timestamp is further off"
    )
    max_models: int = Field(default=1000, ge=1, description="registered models read per sync")
    max_versions: int = Field(default=20_000, ge=1, description="model versions read per sync")


class ApiSettings(BaseModel):
    """The REST API (`responder api`)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="request bodies other than POST /v1/events"
    )
    max_events_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        le=4 * 1024 * 1024,
        description="POST /v1/events body (an event is at most 1 MiB; the DLQ takes up to 5 MiB)",
    )
    max_batch_events: int = Field(default=500, ge=1, le=10_000)
    publish_timeout_s: float = Field(
        default=15.0, gt=0, description="how long to wait for Kafka's acks before a 503"
    )


class EvidenceSettings(BaseModel):
    """Where evidence bundles go (`responder.evidence`): a local directory unless a bucket is set."""

    dir: Path = Field(default=Path("evidence"), description="local store: files are written 0o444")
    s3_bucket: str | None = Field(default=None, description="set: bundles go to this S3 bucket")
    s3_prefix: str = "responder/evidence/"
    s3_endpoint_url: str | None = Field(default=None, description="an S3-compatible endpoint")
    retention_days: int = Field(
        default=365, ge=1, description="object-lock retention, when the bucket has object lock"
    )
    lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] = "COMPLIANCE"
    max_artifact_bytes: int = Field(
        default=2 * 1024**3, ge=0, description="larger model artifacts are listed, not hashed"
    )
    max_artifacts: int = Field(default=10_000, ge=1, description="per model version")


MIN_CHAIN_KEY_CHARS = 32


class AuditSettings(BaseModel):
    """The audit chain's HMAC key and where its head is anchored (`responder.audit`).

    Generate a key with `responder audit chain-key` (32 random bytes, base64). To rotate: move
    the current key under `old_keys` with its id, set a new `key` and a new `key_id`; records
    keep the id of the key that hashed them, so old records verify with the old key.
    """

    key: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key of the chain (unset: legacy unkeyed hashes)"
    )
    key_id: str = Field(default="k1", pattern=r"^[A-Za-z0-9._-]{1,32}$")
    old_keys: dict[str, SecretStr] = Field(
        default_factory=dict, description="earlier keys by id: they verify, they do not hash"
    )
    anchor_topic: str | None = Field(
        default="responder.audit-anchors", description="Kafka topic the worker anchors to"
    )
    anchor_file: Path | None = Field(
        default=None, description="JSON Lines file the worker appends anchors to (and reads)"
    )
    anchor_every_s: float = Field(default=60.0, gt=0, description="how often the head is anchored")

    @field_validator("key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_CHAIN_KEY_CHARS:
            raise ValueError(f"the chain key must be at least {MIN_CHAIN_KEY_CHARS} characters")
        return value


class ReportingClock(BaseModel):
    """One deadline of a reporting category: `after` the incident was marked reportable."""

    name: str = Field(
        min_length=1, description="what is due, e.g. notify the supervisory authority"
    )
    after: timedelta = Field(description="seconds, or ISO 8601 (P15D, PT72H)")
    source: str = Field(min_length=1, description="where the deadline comes from")


class ReportingCategory(BaseModel):
    """A kind of reportable incident and its deadlines (`incidents.reporting`)."""

    title: str = Field(min_length=1)
    clocks: list[ReportingClock] = Field(min_length=1)


class ReportingSettings(BaseModel):
    """Who reports, about which AI system: the names a regulatory report carries; and the
    reporting categories, added to or replacing the defaults of `incidents.reporting`."""

    provider: str | None = Field(
        default=None, description="the AI system's provider (or the controller)"
    )
    provider_contact: str | None = Field(default=None, description="who the authority contacts")
    system: str | None = Field(default=None, description="the AI system, as registered")
    system_version: str | None = None
    system_registration: str | None = Field(
        default=None, description="e.g. the EU database registration number (EU AI Act Art. 71)"
    )
    dpo_contact: str | None = Field(
        default=None, description="data protection officer (GDPR Art. 33(3)(b))"
    )
    categories: dict[str, ReportingCategory] = Field(
        default_factory=dict,
        description='JSON, e.g. {"nis2_significant": {"title": "...", "clocks": [{"name": '
        '"early warning", "after": "PT24H", "source": "NIS2 Art. 23(4)(a)"}]}}',
    )


def _target(seconds: float, what: str) -> Any:
    return Field(default=seconds, gt=0, description=f"seconds from opening until {what}")


class SlaSettings(BaseModel):
    """Per-severity SLA targets: how long an incident may wait for an analyst to acknowledge it
    and to resolve it (or call it a false positive), e.g. `RESPONDER_SLA__CRITICAL_ACKNOWLEDGE_S=900`."""

    critical_acknowledge_s: float = _target(15 * 60, "acknowledged")
    critical_resolve_s: float = _target(4 * 3600, "closed")
    high_acknowledge_s: float = _target(3600, "acknowledged")
    high_resolve_s: float = _target(24 * 3600, "closed")
    medium_acknowledge_s: float = _target(4 * 3600, "acknowledged")
    medium_resolve_s: float = _target(3 * 86400, "closed")
    low_acknowledge_s: float = _target(24 * 3600, "acknowledged")
    low_resolve_s: float = _target(7 * 86400, "closed")
    info_acknowledge_s: float = _target(3 * 86400, "acknowledged")
    info_resolve_s: float = _target(30 * 86400, "closed")


class MetricsSettings(BaseModel):
    """The worker's Prometheus endpoint (the API serves `/v1/metrics` on its own port)."""

    host: str = Field(default="127.0.0.1", description="0.0.0.0 to let another host scrape")
    port: int | None = Field(default=None, ge=1, le=65535, description="unset: no endpoint")


class WebSettings(BaseModel):
    """The analysts' dashboard that `responder api` serves under `/ui/`."""

    enabled: bool = True
    session_ttl_s: float = Field(default=12 * 3600, gt=0, description="a login lasts this long")
    secure_cookie: bool | None = Field(
        default=None, description="Secure session cookie; unset: when the request is https"
    )
    poll_s: float = Field(default=1.0, gt=0, description="how often live pages look for changes")
    max_live: int = Field(default=64, ge=1, description="live page connections per process")
    live_max_s: float = Field(
        default=600.0, gt=0, description="a live connection ends after this long (it reconnects)"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RESPONDER_", env_nested_delimiter="__", extra="ignore"
    )

    app_id: str = "responder"
    rules_dir: Path = Path("rules")
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    kafka: KafkaSettings = KafkaSettings()
    commands: CommandSettings = CommandSettings()
    correlation: CorrelationSettings = CorrelationSettings()
    worker: WorkerSettings = WorkerSettings()
    database: DatabaseSettings = DatabaseSettings()
    slack: SlackSettings = SlackSettings()
    aws: AwsSettings = AwsSettings()
    mlflow: MlflowSettings = MlflowSettings()
    http: HttpSettings = HttpSettings()
    playbooks: PlaybookSettings = PlaybookSettings()
    assets: AssetSettings = AssetSettings()
    api: ApiSettings = ApiSettings()
    evidence: EvidenceSettings = EvidenceSettings()
    audit: AuditSettings = AuditSettings()
    reporting: ReportingSettings = ReportingSettings()
    sla: SlaSettings = SlaSettings()
    metrics: MetricsSettings = MetricsSettings()
    web: WebSettings = WebSettings()


def merged(settings: Settings, overrides: dict[str, Any]) -> Settings:
    """A copy of `settings` with a nested dict of overrides applied (validated, env not re-read)."""
    if not overrides:
        return settings
    return Settings.model_validate(_deep_merge(settings.model_dump(), overrides))


def as_environment(overrides: dict[str, Any], prefix: str = "RESPONDER_") -> dict[str, str]:
    """The `RESPONDER_A__B=value` variables that give a child process the same overrides."""
    env: dict[str, str] = {}
    for key, value in overrides.items():
        name = f"{prefix}{key.upper()}"
        if isinstance(value, dict):
            env.update(as_environment(value, f"{name}__"))
        else:
            env[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def _deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
