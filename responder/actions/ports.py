"""The ports actions talk through, one Protocol per integration kind, bundled for the runner.

`responder.bootstrap.ports(settings)` builds the real adapters; unit tests hand fakes
(`tests/fakes/`). A port left as None means "not configured": the action decides whether that
is an error or a logged no-op (Slack without a token is a no-op that is audited as not sent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from responder.actions.aws_iam import IamPort
    from responder.actions.http import HttpPort
    from responder.actions.incident import IncidentPort
    from responder.actions.mlflow import ModelRegistryPort
    from responder.actions.slack import SlackPort


@dataclass
class Ports:
    slack: SlackPort | None = None
    iam: IamPort | None = None
    models: ModelRegistryPort | None = None
    http: HttpPort | None = None
    incidents: IncidentPort | None = None
