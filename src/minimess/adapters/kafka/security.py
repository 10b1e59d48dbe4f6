"""How every Kafka client connects: the security protocol, SASL credentials and TLS files, alike for all."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from aiokafka.helpers import create_ssl_context

from minimess.adapters.kafka.settings import KafkaSettings

TLS_PROTOCOLS = ("SSL", "SASL_SSL")
SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")


def connection_options(settings: KafkaSettings) -> dict[str, Any]:
    """The keyword arguments that aiokafka's producer, consumer and admin client connect with.

    The password is read from its file here, when a client is made, so it never sits in the
    settings (nor in their repr) and a rotated file is picked up by the next client.
    """
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in TLS_PROTOCOLS:
        options["ssl_context"] = _tls_context(settings)
    if protocol in SASL_PROTOCOLS:
        # aiokafka takes the "plain" username and password for SCRAM as well.
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = _password(settings)
    return options


def _tls_context(settings: KafkaSettings) -> ssl.SSLContext:
    """Verify the brokers with --kafka-ssl-cafile (else the system CAs); present a certificate if given."""
    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.kafka_ssl_cafile,
        certfile=settings.kafka_ssl_certfile,
        keyfile=settings.kafka_ssl_keyfile,
    )
    return context


def _password(settings: KafkaSettings) -> str:
    assert settings.kafka_sasl_password_file is not None  # KafkaSettings requires it with SASL
    return Path(settings.kafka_sasl_password_file).read_text(encoding="utf-8").rstrip("\r\n")
