"""Where evidence bundles are kept, write-once: a local directory, or an S3-compatible bucket.

`EvidenceStore.put` refuses a bundle id that exists (`BundleExists`): evidence is never
overwritten by responder. What protects it from everyone else:

* `LocalEvidenceStore` writes each file with `O_EXCL` and mode 0o444, and the bundle directory
  0o555; root (or the owner, who can chmod) can still change them, which is why the manifest
  hash is kept in the audit chain and `responder evidence verify` compares them.
* `S3EvidenceStore` puts each object with `If-None-Match: *` and, when the bucket has object
  lock, a retention (`lock_mode`, `retention_days`) that nobody can shorten in COMPLIANCE mode;
  without object lock it relies on bucket versioning (an overwrite keeps the original version);
  a bucket with neither is used, with a warning in the log and `protection: none` recorded.

Both are synchronous (the snapshot runs them in a worker thread).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import structlog

from responder.evidence.bundle import MANIFEST, MEMBER_NAME, checked_id

if TYPE_CHECKING:
    from responder.settings import AwsSettings, EvidenceSettings

log = structlog.get_logger(__name__)
MAX_FILE_BYTES = 256 * 1024**2  # a member larger than this is not read back (not ours)


class BundleExists(Exception):
    """The bundle id is taken: evidence is written once."""


class BundleMissing(LookupError):
    """No bundle with this id in the store."""


@dataclass(frozen=True)
class Stored:
    """Where a bundle went and what keeps it: recorded in the audit chain with its hash."""

    store: Literal["local", "s3"]
    location: str
    protection: str
    versions: dict[str, str] = field(default_factory=dict)  # S3 object versions by file

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "store": self.store,
            "location": self.location,
            "protection": self.protection,
        }
        if self.versions:
            data["versions"] = dict(self.versions)
        return data


class EvidenceStore(Protocol):
    kind: Literal["local", "s3"]

    def put(self, bundle: str, files: Mapping[str, bytes]) -> Stored:
        """Write every file of a new bundle (`manifest.json` last); BundleExists if it exists."""
        ...

    def get(self, bundle: str) -> dict[str, bytes]:
        """Every file of the bundle as stored now; BundleMissing if there is none."""
        ...

    def location(self, bundle: str) -> str: ...


def _ordered(files: Mapping[str, bytes]) -> list[tuple[str, bytes]]:
    """Members first, the manifest last: a bundle without its manifest is visibly incomplete."""
    for name in files:
        if name != MANIFEST and not MEMBER_NAME.fullmatch(name):
            raise ValueError(f"not a bundle file name: {name!r}")
    return sorted(files.items(), key=lambda item: (item[0] == MANIFEST, item[0]))


class LocalEvidenceStore:
    """Bundles as directories `<root>/<incident id>/<name>/`, files 0o444, written once."""

    kind: Literal["local", "s3"] = "local"
    protection = "local files 0o444 in a 0o555 directory, written once (O_EXCL)"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, bundle: str) -> Path:
        return self.root.joinpath(*checked_id(bundle).split("/"))

    def location(self, bundle: str) -> str:
        return str(self._dir(bundle).absolute())

    def put(self, bundle: str, files: Mapping[str, bytes]) -> Stored:
        ordered = _ordered(files)
        target = self._dir(bundle)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.parent.is_symlink():
            raise ValueError(f"{target.parent} is a symbolic link: refusing to write through it")
        try:
            target.mkdir(mode=0o700)
        except FileExistsError:
            raise BundleExists(f"evidence bundle {bundle} exists: not overwritten") from None
        for name, data in ordered:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(target / name, flags, 0o444)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(target / name, 0o444)  # the umask may have taken more than write bits
        os.chmod(target, 0o555)  # noqa: S103  (read-only for all: auditors read, nobody writes)
        return Stored("local", self.location(bundle), self.protection)

    def get(self, bundle: str) -> dict[str, bytes]:
        target = self._dir(bundle)
        if not target.is_dir() or target.is_symlink():
            raise BundleMissing(f"no evidence bundle {bundle} in {self.root}")
        files: dict[str, bytes] = {}
        for path in sorted(target.iterdir()):
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
                files[path.name] = b""  # reported as unlisted or not matching by `check`
                continue
            files[path.name] = path.read_bytes()
        return files


class S3EvidenceStore:
    """Bundles as objects `<prefix><incident id>/<name>/<file>` in one bucket, written once."""

    kind: Literal["local", "s3"] = "s3"

    def __init__(
        self,
        client: Any,
        *,
        bucket: str,
        prefix: str = "",
        retention_days: int = 365,
        lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] = "COMPLIANCE",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix
        self.retention = timedelta(days=retention_days)
        self.lock_mode = lock_mode
        self._clock = clock
        self._protection: str | None = None

    def __repr__(self) -> str:  # never show the client's credentials
        return f"S3EvidenceStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def _key(self, bundle: str, name: str = "") -> str:
        return f"{self.prefix}{checked_id(bundle)}/{name}"

    def location(self, bundle: str) -> str:
        return f"s3://{self.bucket}/{self._key(bundle)}"

    def protection(self) -> str:
        """`object_lock`, `versioning` or `none`, as the bucket says (asked once)."""
        if self._protection is None:
            self._protection = self._probe()
            if self._protection == "none":
                log.warning(
                    "evidence bucket has neither object lock nor versioning: "
                    "stored evidence can be overwritten by anyone with write access",
                    bucket=self.bucket,
                )
        return self._protection

    def _probe(self) -> str:
        from botocore.exceptions import ClientError

        try:
            lock = self._client.get_object_lock_configuration(Bucket=self.bucket)
            if lock.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled":
                return "object_lock"
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in (
                "ObjectLockConfigurationNotFoundError",
                "NoSuchObjectLockConfiguration",
            ):
                raise
        versioning = self._client.get_bucket_versioning(Bucket=self.bucket)
        return "versioning" if versioning.get("Status") == "Enabled" else "none"

    def put(self, bundle: str, files: Mapping[str, bytes]) -> Stored:
        from botocore.exceptions import ClientError

        ordered = _ordered(files)
        listed = self._client.list_objects_v2(
            Bucket=self.bucket, Prefix=self._key(bundle), MaxKeys=1
        )
        if listed.get("KeyCount", 0):
            raise BundleExists(f"evidence bundle {bundle} exists: not overwritten")
        protection = self.protection()
        extra: dict[str, Any] = {}
        described = protection
        if protection == "object_lock":
            until = self._clock() + self.retention
            extra = {"ObjectLockMode": self.lock_mode, "ObjectLockRetainUntilDate": until}
            described = f"object_lock {self.lock_mode} until {until.isoformat()}"
        versions: dict[str, str] = {}
        for name, data in ordered:
            try:
                answer = self._client.put_object(
                    Bucket=self.bucket,
                    Key=self._key(bundle, name),
                    Body=data,
                    ContentType="application/json",
                    ChecksumAlgorithm="SHA256",
                    IfNoneMatch="*",
                    **extra,
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "PreconditionFailed":
                    raise BundleExists(
                        f"evidence bundle {bundle} exists: not overwritten"
                    ) from None
                raise
            if answer.get("VersionId"):
                versions[name] = str(answer["VersionId"])
        return Stored("s3", self.location(bundle), described, versions)

    def get(self, bundle: str) -> dict[str, bytes]:
        prefix = self._key(bundle)
        files: dict[str, bytes] = {}
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                name = str(item["Key"])[len(prefix) :]
                if int(item.get("Size", 0)) > MAX_FILE_BYTES:
                    files[name] = b""
                    continue
                body = self._client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"]
                files[name] = body.read()
        if not files:
            raise BundleMissing(f"no evidence bundle {bundle} in s3://{self.bucket}/{self.prefix}")
        return files


def s3_client(evidence: EvidenceSettings, aws: AwsSettings) -> Any:
    """A boto3 S3 client for the evidence bucket (the AWS credentials of `aws`, or the usual
    credential chain when those are unset)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=aws.access_key_id.get_secret_value() if aws.access_key_id else None,
        aws_secret_access_key=(
            aws.secret_access_key.get_secret_value() if aws.secret_access_key else None
        ),
        region_name=aws.region,
    )
    return session.client(
        "s3",
        endpoint_url=evidence.s3_endpoint_url or aws.endpoint_url,
        config=Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5),
    )


def open_store(evidence: EvidenceSettings, aws: AwsSettings) -> EvidenceStore:
    """The configured store: the S3 bucket when one is set, else the local directory."""
    if evidence.s3_bucket:
        return S3EvidenceStore(
            s3_client(evidence, aws),
            bucket=evidence.s3_bucket,
            prefix=evidence.s3_prefix,
            retention_days=evidence.retention_days,
            lock_mode=evidence.lock_mode,
        )
    return LocalEvidenceStore(evidence.dir)
