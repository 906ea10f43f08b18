"""Signed commands: what a signature proves, and every way a forged one is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session

from responder.commands import (
    COMMAND,
    IncidentCommand,
    KillSwitch,
    Replayed,
    Unsigned,
    command_gate,
    command_signer,
    first_seen,
    signed_record,
)
from responder.security.signatures import (
    BadKey,
    Refused,
    Signer,
    Verifier,
    generate,
    private_key,
)
from responder.settings import CommandSettings
from responder.storage.database import make_engine, upgrade

NOW = 1_780_000_000_000
PRIVATE, PUBLIC = generate()
SIGNER = Signer("api", private_key(PRIVATE))
VERIFIER = Verifier.of({"api": [PUBLIC]}, max_age_s=300, max_skew_s=30)
OFF = KillSwitch(on=False, by="token:alice", reason="done")


def signed(value: bytes, signer: Signer = SIGNER, at: int = NOW) -> list[tuple[str, bytes]]:
    return signer.headers(value, now_ms=at)


def test_a_signed_command_verifies_and_names_its_issuer() -> None:
    value, key, headers = signed_record(OFF, SIGNER)
    got = VERIFIER.verify(value, headers, now_ms=int(dict(headers)["responder-signed-at"]))
    assert got.issuer == "api"
    assert COMMAND.validate_json(value) == OFF and key == b"kill_switch"


@pytest.mark.parametrize(
    ("field", "forged"),
    [
        ("by", "token:mallory"),
        ("on", True),
        ("id", "f" * 32),
        ("reason", "other"),
    ],
)
def test_a_changed_field_breaks_the_signature(field: str, forged: object) -> None:
    value = OFF.model_dump_json().encode()
    headers = signed(value)
    changed = json.dumps({**json.loads(value), field: forged}).encode()
    COMMAND.validate_json(changed)  # still a valid command: only the signature catches it
    with pytest.raises(Refused, match="bad signature for issuer 'api'"):
        VERIFIER.verify(changed, headers, now_ms=NOW)


def test_issuer_and_time_are_signed_too() -> None:
    value = OFF.model_dump_json().encode()
    headers = dict(signed(value))
    other = Verifier.of({"api": [PUBLIC], "slack": [PUBLIC]}, max_age_s=300, max_skew_s=30)
    as_slack = [*{**headers, "responder-issuer": b"slack"}.items()]
    with pytest.raises(Refused, match="bad signature"):
        other.verify(value, as_slack, now_ms=NOW)
    later = [*{**headers, "responder-signed-at": str(NOW + 60_000).encode()}.items()]
    with pytest.raises(Refused, match="bad signature"):
        VERIFIER.verify(value, later, now_ms=NOW)


def test_a_wrong_key_an_unknown_issuer_and_no_signature_are_refused() -> None:
    value = OFF.model_dump_json().encode()
    intruder = Signer("api", private_key(generate()[0]))
    with pytest.raises(Refused, match="bad signature"):
        VERIFIER.verify(value, signed(value, intruder), now_ms=NOW)
    with pytest.raises(Refused, match="unknown issuer 'cli'"):
        VERIFIER.verify(value, signed(value, Signer("cli", private_key(PRIVATE))), now_ms=NOW)
    with pytest.raises(Refused, match="unsigned"):
        VERIFIER.verify(value, [], now_ms=NOW)
    twice = [*signed(value), ("responder-issuer", b"api")]
    with pytest.raises(Refused, match="2 times"):
        VERIFIER.verify(value, twice, now_ms=NOW)
    garbled = [(k, b"\xff" if k == "responder-signature" else v) for k, v in signed(value)]
    with pytest.raises(Refused, match="not ASCII"):
        VERIFIER.verify(value, garbled, now_ms=NOW)
    no_time = [(k, b"soon" if k == "responder-signed-at" else v) for k, v in signed(value)]
    with pytest.raises(Refused, match="millisecond"):
        VERIFIER.verify(value, no_time, now_ms=NOW)


def test_expired_and_future_signatures_are_refused() -> None:
    value = OFF.model_dump_json().encode()
    VERIFIER.verify(value, signed(value, at=NOW - 299_000), now_ms=NOW)
    with pytest.raises(Refused, match="expired: signed 301 s ago"):
        VERIFIER.verify(value, signed(value, at=NOW - 301_000), now_ms=NOW)
    VERIFIER.verify(value, signed(value, at=NOW + 29_000), now_ms=NOW)
    with pytest.raises(Refused, match="in the future"):
        VERIFIER.verify(value, signed(value, at=NOW + 31_000), now_ms=NOW)


def test_a_rotated_key_verifies_alongside_the_old_one() -> None:
    new_private, new_public = generate()
    both = Verifier.of({"api": [PUBLIC, new_public]}, max_age_s=300, max_skew_s=30)
    value = OFF.model_dump_json().encode()
    old = both.verify(value, signed(value), now_ms=NOW)
    new = both.verify(value, signed(value, Signer("api", private_key(new_private))), now_ms=NOW)
    assert old.key != new.key


def test_a_replayed_command_id_is_refused() -> None:
    engine = make_engine("sqlite://")
    upgrade(engine)
    value = OFF.model_dump_json().encode()
    now_ms = 4_000_000_000_000  # far ahead: the row outlives this test's clock
    proof = VERIFIER.verify(value, signed(value, at=now_ms), now_ms=now_ms)
    with Session(engine) as session:
        first_seen(session, OFF.id, proof, VERIFIER.max_age_ms)
        session.commit()
    with Session(engine) as session, pytest.raises(Replayed, match=f"replayed: command {OFF.id}"):
        first_seen(session, OFF.id, proof, VERIFIER.max_age_ms)
    other = IncidentCommand(incident_id="i", status="acknowledged", by="al")
    with Session(engine) as session:  # another id is not a replay
        first_seen(session, other.id, proof, VERIFIER.max_age_ms)


def test_settings_build_the_signer_and_verifier_and_never_show_the_key() -> None:
    settings = CommandSettings.model_validate(
        {"issuer": "cli-alice", "signing_key": PRIVATE, "issuers": {"cli-alice": PUBLIC}}
    )
    signer = command_signer(settings)
    assert signer is not None and PRIVATE not in repr(signer) and PRIVATE not in repr(settings)
    value = OFF.model_dump_json().encode()
    assert command_gate(settings).verifier.verify(value, signed(value, signer), now_ms=NOW)
    with pytest.raises(Unsigned, match="RESPONDER_COMMANDS__SIGNING_KEY"):
        signed_record(OFF, command_signer(CommandSettings()))
    with pytest.raises(ValueError, match="go together"):
        CommandSettings.model_validate({"issuer": "api"})


@pytest.mark.parametrize("text", ["not base64!", "AAAA", PUBLIC + "AAAA"])
def test_a_malformed_key_says_what_is_wrong_without_repeating_it(text: str) -> None:
    with pytest.raises(BadKey) as caught:
        private_key(text)
    assert text not in str(caught.value)


def test_keygen_writes_the_issuer_env_file_and_prints_the_workers_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from responder.cli import app

    env_file = tmp_path / "api.env"
    made = CliRunner().invoke(
        app, ["commands", "keygen", "--issuer", "api", "--out", str(env_file)]
    )
    assert made.exit_code == 0, made.output
    assert env_file.stat().st_mode & 0o777 == 0o600
    pairs = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    trusted = json.loads(made.output.split("RESPONDER_COMMANDS__ISSUERS=", 1)[1].strip().strip("'"))
    settings = CommandSettings(
        issuer=pairs["RESPONDER_COMMANDS__ISSUER"],
        signing_key=pairs["RESPONDER_COMMANDS__SIGNING_KEY"],
        issuers=trusted,
    )
    assert pairs["RESPONDER_COMMANDS__SIGNING_KEY"] not in made.output
    value, _, headers = signed_record(OFF, command_signer(settings))
    now = int(dict(headers)["responder-signed-at"])
    assert command_gate(settings).verifier.verify(value, headers, now_ms=now).issuer == "api"
    again = CliRunner().invoke(
        app, ["commands", "keygen", "--issuer", "api", "--out", str(env_file)]
    )
    assert again.exit_code == 1 and "not overwritten" in again.output


def test_an_issuer_acts_only_for_the_identities_it_may_vouch_for() -> None:
    cli_private, cli_public = generate()
    gate = command_gate(
        CommandSettings(
            issuers={"api": [PUBLIC], "alice": [cli_public]},
            identities={"api": ["token:*", "slack:*"]},
        )
    )
    alice = Signer("alice", private_key(cli_private))

    def admit(signer: Signer, by: str) -> str:
        value = KillSwitch(on=False, by=by).model_dump_json().encode()
        command, proof = gate.admit(value, signed(value, signer), now_ms=NOW)
        return f"{proof.issuer}:{command.by}"

    assert admit(SIGNER, "token:ci") == "api:token:ci"
    assert admit(SIGNER, "slack:U0123") == "api:slack:U0123"
    assert admit(alice, "alice") == "alice:alice"
    with pytest.raises(Refused, match="issuer 'api' may not act as 'bob'"):
        admit(SIGNER, "bob")
    with pytest.raises(Refused, match="issuer 'alice' may not act as 'token:admin'"):
        admit(alice, "token:admin")  # a CLI key signs its holder's commands only
