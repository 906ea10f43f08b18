"""Import every action module so their `@action`s register; the runner and loader use this."""

from __future__ import annotations

from responder.actions import (  # noqa: F401  (imported for registration)
    approval,
    aws_iam,
    aws_waf,
    evidence,
    http,
    incident,
    mlflow,
    quarantine,
    slack,
)
from responder.actions.registry import REGISTRY

__all__ = ["REGISTRY"]
