"""The tests' command issuer: a key pair made once per test process, trusted by the workers and
used by the API, the CLI and the tests themselves to sign the commands they send."""

from __future__ import annotations

import json
from typing import Any

from responder.commands import CommandGate, command_gate
from responder.security.signatures import Signer, generate, private_key
from responder.settings import CommandSettings

ISSUER = "tests"
SIGNING_KEY, PUBLIC_KEY = generate()
SIGNER = Signer(ISSUER, private_key(SIGNING_KEY))


def command_settings() -> dict[str, Any]:
    """`commands` overrides: sign as the tests' issuer, trust it to act for anyone."""
    return {
        "issuer": ISSUER,
        "signing_key": SIGNING_KEY,
        "issuers": {ISSUER: [PUBLIC_KEY]},
        "identities": {ISSUER: ["*"]},
    }


GATE: CommandGate = command_gate(CommandSettings.model_validate(command_settings()))
VERIFIER = GATE.verifier


def command_env() -> dict[str, str]:
    """The same as `RESPONDER_COMMANDS__...` variables for a child process."""
    return {
        "RESPONDER_COMMANDS__ISSUER": ISSUER,
        "RESPONDER_COMMANDS__SIGNING_KEY": SIGNING_KEY,
        "RESPONDER_COMMANDS__ISSUERS": json.dumps({ISSUER: [PUBLIC_KEY]}),
        "RESPONDER_COMMANDS__IDENTITIES": json.dumps({ISSUER: ["*"]}),
    }
