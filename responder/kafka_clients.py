"""How every Kafka client authenticates: the one place that turns `KafkaSettings` into client
options (TLS with a CA, client certificates for mTLS, SASL SCRAM with a user and password).

The aiokafka producers, consumers and admin clients take `client_options(kafka)`; the faust app
takes `faust_credentials(kafka)`. Reading the certificate files is the only I/O here; the
password is handed to the client and never logged.
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context

from responder.settings import KafkaSettings


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context of an SSL or SASL_SSL connection (None for the plaintext protocols)."""
    if not kafka.security_protocol.endswith("SSL"):
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=kafka.ssl_cafile,
        certfile=kafka.ssl_certfile,
        keyfile=kafka.ssl_keyfile,
        password=kafka.ssl_key_password.get_secret_value() if kafka.ssl_key_password else None,
    )
    context.check_hostname = kafka.ssl_check_hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """`bootstrap_servers` and the security options of an aiokafka client."""
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": kafka.security_protocol,
    }
    context = ssl_context(kafka)
    if context is not None:
        options["ssl_context"] = context
    if kafka.security_protocol.startswith("SASL_"):
        assert kafka.sasl_password is not None  # KafkaSettings refuses SASL without one
        options.update(
            sasl_mechanism=kafka.sasl_mechanism,
            sasl_plain_username=kafka.sasl_username,
            sasl_plain_password=kafka.sasl_password.get_secret_value(),
        )
    return options


def faust_credentials(kafka: KafkaSettings) -> Any:
    """The faust app's `broker_credentials` for the same settings (None: plaintext)."""
    import faust  # the worker's dependency only; imported where it is used

    context = ssl_context(kafka)
    if kafka.security_protocol.startswith("SASL_"):
        assert kafka.sasl_password is not None
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=kafka.sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None
