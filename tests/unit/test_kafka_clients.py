"""Every Kafka client's connection options come from the settings, in one place."""

from __future__ import annotations

import ssl

import faust
import pytest
from pydantic import ValidationError

from responder.kafka_clients import client_options, faust_credentials
from responder.settings import KafkaSettings, Settings


def test_plaintext_is_the_default_and_has_no_security_options() -> None:
    options = client_options(KafkaSettings())
    assert options == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}
    assert faust_credentials(KafkaSettings()) is None


def test_sasl_ssl_gives_a_verifying_tls_context_and_the_scram_user() -> None:
    kafka = KafkaSettings(
        bootstrap_servers="kafka:9094",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="worker",
        sasl_password="s3cret-pw",
    )
    options = client_options(kafka)
    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert options == {
        "bootstrap_servers": "kafka:9094",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "worker",
        "sasl_plain_password": "s3cret-pw",
    }
    credentials = faust_credentials(kafka)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.mechanism.value == "SCRAM-SHA-256"
    assert credentials.protocol.value == "SASL_SSL"
    assert "s3cret-pw" not in repr(credentials) and "s3cret-pw" not in repr(kafka)


def test_ssl_alone_is_tls_without_sasl() -> None:
    kafka = KafkaSettings(security_protocol="SSL", ssl_check_hostname=False)
    options = client_options(kafka)
    assert options["security_protocol"] == "SSL" and "sasl_mechanism" not in options
    assert not options["ssl_context"].check_hostname
    assert isinstance(faust_credentials(kafka), faust.SSLCredentials)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs sasl_username and sasl_password"),
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_username": "u"}, "sasl_password"),
        ({"ssl_certfile": "/etc/client.crt"}, "go together"),
        ({"sasl_mechanism": "PLAIN"}, "SCRAM"),
    ],
)
def test_incomplete_security_settings_are_refused(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KafkaSettings.model_validate(fields)


def test_the_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESPONDER_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("RESPONDER_KAFKA__SASL_USERNAME", "api")
    monkeypatch.setenv("RESPONDER_KAFKA__SASL_PASSWORD", "from-env")
    kafka = Settings().kafka
    assert client_options(kafka)["sasl_plain_password"] == "from-env"
    assert "from-env" not in repr(Settings())
