"""--kafka-security-protocol and friends: what the settings accept, and that every Kafka client gets them."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import attrs
import pytest

from minimess.adapters.kafka.clients import AiokafkaClients
from minimess.adapters.kafka.settings import KafkaSettings

PASSWORD = "s3cret-of-the-servers"


class Recorder:
    """Stands for one aiokafka client class: keeps the keyword arguments of every client made."""

    def __init__(self) -> None:
        self.made: list[dict[str, Any]] = []

    def __call__(self, **options: Any) -> Recorder:
        self.made.append(options)
        return self

    # What create_topic calls on an admin client.
    async def start(self) -> None:
        pass

    async def create_topics(self, _topics: object) -> Any:
        return attrs.make_class("Answer", ["topic_errors"])([])

    async def close(self) -> None:
        pass


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "kafka-password"
    path.write_text(PASSWORD + "\n")
    return path


async def made_clients(settings: KafkaSettings) -> dict[str, dict[str, Any]]:
    """The options the producer, the consumer (live and replay alike) and the admin client got."""
    producer, consumer, admin = Recorder(), Recorder(), Recorder()
    clients = AiokafkaClients(producer_class=producer, consumer_class=consumer, admin_class=admin)
    await clients.create_topic(settings, "node")
    clients.producer(settings, "node")
    clients.consumer(settings, "node")
    clients.consumer(settings, "node-replay")
    assert [len(made.made) for made in (producer, consumer, admin)] == [1, 2, 1]
    assert consumer.made[0].keys() == consumer.made[1].keys()
    return {"producer": producer.made[0], "consumer": consumer.made[1], "admin": admin.made[0]}


async def test_by_default_every_client_connects_in_plaintext() -> None:
    for name, options in (await made_clients(KafkaSettings())).items():
        assert options["security_protocol"] == "PLAINTEXT", name
        assert "sasl_mechanism" not in options, name
        assert "ssl_context" not in options, name


async def test_sasl_plaintext_credentials_reach_every_client(password_file: Path) -> None:
    settings = KafkaSettings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="minimess",
        kafka_sasl_password_file=str(password_file),
    )
    for name, options in (await made_clients(settings)).items():
        assert options["security_protocol"] == "SASL_PLAINTEXT", name
        assert options["sasl_mechanism"] == "SCRAM-SHA-512", name
        assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("minimess", PASSWORD)
        assert "ssl_context" not in options, name
    assert PASSWORD not in repr(settings)


async def test_sasl_ssl_gives_every_client_a_verifying_tls_context_and_the_credentials(
    password_file: Path,
) -> None:
    settings = KafkaSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="minimess",
        kafka_sasl_password_file=str(password_file),
    )
    for name, options in (await made_clients(settings)).items():
        context = options["ssl_context"]
        assert isinstance(context, ssl.SSLContext), name
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.check_hostname
        assert (options["security_protocol"], options["sasl_mechanism"]) == ("SASL_SSL", "PLAIN"), name


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_without_a_user_and_a_password_file_is_refused(protocol: str, password_file: Path) -> None:
    with pytest.raises(ValueError, match="needs --kafka-sasl-username and --kafka-sasl-password-file"):
        KafkaSettings(kafka_security_protocol=protocol, kafka_sasl_username="minimess")
    with pytest.raises(ValueError, match="needs --kafka-sasl-username"):
        KafkaSettings(kafka_security_protocol=protocol, kafka_sasl_password_file=str(password_file))


@pytest.mark.parametrize(
    "field", ["kafka_sasl_password_file", "kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"]
)
def test_a_file_option_naming_no_readable_file_is_refused_at_start(field: str, tmp_path: Path) -> None:
    changes: dict[str, Any] = {field: str(tmp_path / "missing")}
    with pytest.raises(ValueError, match=f"'{field}' .* is not a readable file"):
        KafkaSettings(**changes)


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    certificate = tmp_path / "cert.pem"
    certificate.write_text("x")
    with pytest.raises(ValueError, match="go together"):
        KafkaSettings(kafka_security_protocol="SSL", kafka_ssl_certfile=str(certificate))


@pytest.mark.parametrize(
    ("field", "value"), [("kafka_security_protocol", "TLS"), ("kafka_sasl_mechanism", "GSSAPI")]
)
def test_an_unknown_protocol_or_mechanism_is_refused(field: str, value: str) -> None:
    changes: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=field):
        KafkaSettings(**changes)
