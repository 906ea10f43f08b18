"""AWS IAM access-key containment: `aws.iam.deactivate_access_key` (undo:
`aws.iam.activate_access_key`) and `aws.iam.delete_access_key`.

A leaked key is contained by deactivating it first: that is reversible, so an analyst who marks
the incident a false positive gets the key back through the step's `undo`. Deleting is final and
belongs behind an approval. Setting a status is idempotent on AWS, and the actions read the
current status first, so a redelivered step changes nothing and still reports what it found.

boto3 is synchronous; `Boto3Iam` runs each call in a worker thread so the event loop keeps
serving other runs while IAM answers (the client and error mapping: `aws_client`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from pydantic import BaseModel, ConfigDict, Field

from responder.actions import aws_client
from responder.actions.aws_client import Boto3Adapter
from responder.actions.ports import AccessKey, IamPort, KeyStatus
from responder.actions.registry import ActionContext, ActionError, Output, action, configured

if TYPE_CHECKING:
    pass

log = structlog.get_logger(__name__)


class Boto3Iam(Boto3Adapter):
    """`IamPort` over a boto3 IAM client (AWS itself, or any endpoint such as a moto server)."""

    service = "iam"

    def error(self, exc: Exception, operation: str) -> ActionError:
        return translate_error(exc, operation=operation)

    async def get_access_key(self, *, access_key_id: str, user_name: str | None) -> AccessKey:
        if user_name is None:
            # GetAccessKeyLastUsed answers with the owner, for any key in the account.
            found = await self._call("get_access_key_last_used", AccessKeyId=access_key_id)
            user_name = str(found["UserName"])
        marker: str | None = None
        while True:
            page = await self._call(
                "list_access_keys", UserName=user_name, **({"Marker": marker} if marker else {})
            )
            for meta in page.get("AccessKeyMetadata", []):
                if meta["AccessKeyId"] == access_key_id:
                    return AccessKey(
                        user_name=user_name, access_key_id=access_key_id, status=meta["Status"]
                    )
            if not page.get("IsTruncated"):
                break
            marker = page["Marker"]
        raise ActionError(
            f"access key {access_key_id} does not belong to IAM user {user_name}",
            code="not_found",
        )

    async def set_access_key_status(
        self, *, user_name: str, access_key_id: str, status: KeyStatus
    ) -> None:
        await self._call(
            "update_access_key", UserName=user_name, AccessKeyId=access_key_id, Status=status
        )

    async def delete_access_key(self, *, user_name: str, access_key_id: str) -> None:
        await self._call("delete_access_key", UserName=user_name, AccessKeyId=access_key_id)


def translate_error(exc: Exception, *, operation: str) -> ActionError:
    """Map botocore failures onto what the runner needs to know: retry or give up."""
    return aws_client.translate_error(
        exc, service="IAM", operation=operation, codes={"NoSuchEntity": ("not_found", False)}
    )


class AccessKeyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    access_key_id: str = Field(min_length=16, max_length=128, pattern=r"^\w+$")
    user_name: str | None = Field(
        default=None, description="the key's owner; unset: asked of IAM (GetAccessKeyLastUsed)"
    )


def _iam(ctx: ActionContext) -> IamPort:
    return configured(ctx.ports.iam, "aws")


async def _set_status(params: AccessKeyParams, ctx: ActionContext, status: KeyStatus) -> Output:
    iam = _iam(ctx)
    key = await iam.get_access_key(access_key_id=params.access_key_id, user_name=params.user_name)
    if key.status != status:
        await iam.set_access_key_status(
            user_name=key.user_name, access_key_id=key.access_key_id, status=status
        )
    log.info(
        "aws.iam.access_key_status",
        run_id=ctx.run_id,
        step_id=ctx.step_id,
        user_name=key.user_name,
        access_key_id=key.access_key_id,
        previous_status=key.status,
        status=status,
        changed=key.status != status,
    )
    return {
        "user_name": key.user_name,
        "access_key_id": key.access_key_id,
        "previous_status": key.status,
        "status": status,
    }


@action("aws.iam.deactivate_access_key", params=AccessKeyParams)
async def deactivate_access_key(params: AccessKeyParams, ctx: ActionContext) -> Output:
    """Deactivate an IAM access key (reversible; undo with aws.iam.activate_access_key)."""
    return await _set_status(params, ctx, "Inactive")


@action("aws.iam.activate_access_key", params=AccessKeyParams)
async def activate_access_key(params: AccessKeyParams, ctx: ActionContext) -> Output:
    """Reactivate an IAM access key: the undo of aws.iam.deactivate_access_key."""
    return await _set_status(params, ctx, "Active")


class DeleteKeyParams(AccessKeyParams):
    missing_ok: bool = Field(
        default=True,
        description="a key that is already gone counts as deleted (so a resumed run goes on)",
    )


@action("aws.iam.delete_access_key", params=DeleteKeyParams)
async def delete_access_key(params: DeleteKeyParams, ctx: ActionContext) -> Output:
    """Delete an IAM access key for good (no undo: put it behind an approval)."""
    iam = _iam(ctx)
    try:
        key = await iam.get_access_key(
            access_key_id=params.access_key_id, user_name=params.user_name
        )
    except ActionError as exc:
        if exc.code != "not_found" or not params.missing_ok:
            raise
        # Deleted by an earlier attempt of this step (a worker died before recording it), or
        # by someone else: the state the step asks for holds.
        return {
            "user_name": params.user_name,
            "access_key_id": params.access_key_id,
            "deleted": True,
            "already_gone": True,
        }
    await iam.delete_access_key(user_name=key.user_name, access_key_id=key.access_key_id)
    log.warning(
        "aws.iam.access_key_deleted",
        run_id=ctx.run_id,
        step_id=ctx.step_id,
        user_name=key.user_name,
        access_key_id=key.access_key_id,
    )
    return {"user_name": key.user_name, "access_key_id": key.access_key_id, "deleted": True}
