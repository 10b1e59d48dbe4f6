"""--broker kafka without a Kafka: the Kafka settings' ranges, and the broker the server's graph builds."""

from __future__ import annotations

import math
import socket
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from dependency_injector import providers

from minimess.adapters.kafka.broker import KafkaBroker
from minimess.adapters.kafka.envelope import Envelope, decode
from minimess.adapters.kafka.settings import KafkaSettings
from minimess.adapters.websocket_server.settings import WebSocketSettings
from minimess.bootstrap.server import Container, build_container
from minimess.bootstrap.settings import ServeSettings
from minimess.domain.errors import PublishTimeout
from minimess.domain.model import Message, Topic, Uid
from tests.unit.kafka_fakes import FakeKafka

# Nothing listens on port 1: a broker pointed there could only fail, and the fake clients never try.
NOWHERE = "127.0.0.1:1"


# --- KafkaSettings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"kafka_partitions": 1},
        {"kafka_partitions": 10_000},
        {"publish_timeout": 0.001},
        {"publish_timeout": 600.0},
        {"kafka_bootstrap": "k1:9092,k2:9092", "kafka_topic": "chat.bus-1_a"},
    ],
)
def test_kafka_boundary_values_are_accepted(changes: dict[str, Any]) -> None:
    """One partition and a publish deadline of a millisecond are the smallest valid values."""
    settings = KafkaSettings(**changes)
    assert {name: getattr(settings, name) for name in changes} == changes


@pytest.mark.parametrize(
    "changes",
    [
        {"kafka_partitions": 0},
        {"kafka_partitions": -3},
        {"publish_timeout": 0},
        {"publish_timeout": -1},
        {"publish_timeout": math.nan},
        {"publish_timeout": math.inf},
        *({"kafka_topic": topic} for topic in ("", "has space", "slash/topic", "t" * 250, "ünïcode")),
    ],
)
def test_kafka_values_out_of_range_or_that_kafka_would_refuse_are_rejected(changes: dict[str, Any]) -> None:
    """No partitions, a publish deadline that is no positive finite time, or a topic name Kafka refuses
    ([a-zA-Z0-9._-]{1,249}; another would leave the server unready for ever) raise ValueError naming it."""
    (name,) = changes
    with pytest.raises(ValueError, match=name):
        KafkaSettings(**changes)


# --- the container -------------------------------------------------------------------------------


def _message() -> Message:
    return Message.create(Topic("news"), Uid("alice"), "hi", datetime.now(UTC))


def _container(settings: ServeSettings, clients: FakeKafka) -> Container:
    """The server's graph for `settings`, its Kafka broker given the fake clients."""
    container = build_container(settings)
    kafka = container.broker.providers["kafka"]
    assert isinstance(kafka, providers.Singleton)
    kafka.add_kwargs(clients=clients)
    return container


@pytest.mark.parametrize(
    ("node_id", "name"), [("eu-1", "eu-1"), (None, f"{socket.gethostname()}:9001")], ids=["given", "default"]
)
async def test_the_kafka_broker_is_built_from_the_settings_and_named_after_the_server(
    node_id: str | None, name: str
) -> None:
    """Topic, partitions, deadline and node name (--node-id, else hostname:port) reach the broker;
    building the graph connects to nothing, and the service receives through that broker."""
    fake = FakeKafka(topic="chat.bus", partitions=3)
    settings = ServeSettings(
        broker="kafka",
        kafka=KafkaSettings(
            kafka_bootstrap=NOWHERE, kafka_topic="chat.bus", kafka_partitions=3, publish_timeout=0.25
        ),
        server=WebSocketSettings(port=9001, node_id=node_id),
    )
    container = _container(settings, fake)
    container.server()
    broker, service = container.broker(), container.service()
    assert isinstance(broker, KafkaBroker)
    assert not service.is_ready()
    assert (fake.calls, fake.producers, fake.consumers) == ([], [], []), "building the graph made a client"
    async with service.running():
        await fake.until(service.is_ready, "the service is ready")
        (producer,) = fake.producers
        message = _message()
        await broker.publish(message)
        fake.acks = "hang"
        with pytest.raises(PublishTimeout, match=r"0\.25 s"):
            await broker.publish(_message())
    assert fake.topics_created == [("chat.bus", 3, f"minimess-{name}")]
    assert (producer.client_id, fake.consumers[0].client_id) == (f"minimess-{name}",) * 2
    # One record, keyed by the minimess topic, the envelope naming this server.
    (record,) = fake.records()
    assert record.key == b"news"
    assert decode(record.value or b"") == Envelope(message=message, origin_node=name)


@pytest.mark.parametrize(("protocol", "first"), [(None, 0x08), ("binary", 0x08), ("compact", 0x15)])
async def test_the_envelope_protocol_chosen_is_the_one_the_broker_writes(
    protocol: str | None, first: int
) -> None:
    """--kafka-envelope-protocol: binary unless told; compact is what earlier servers read."""
    fake = FakeKafka(topic="chat.bus", partitions=3)
    kafka = KafkaSettings(kafka_bootstrap=NOWHERE, kafka_topic="chat.bus", kafka_partitions=3)
    if protocol is not None:
        kafka = attrs.evolve(kafka, kafka_envelope_protocol=protocol)
    settings = ServeSettings(broker="kafka", kafka=kafka)
    container = _container(settings, fake)
    broker, service = container.broker(), container.service()
    async with service.running():
        await fake.until(service.is_ready, "the service is ready")
        message = _message()
        await broker.publish(message)
    (record,) = fake.records()
    assert (record.value or b"")[0] == first
    assert decode(record.value or b"").message == message


def test_an_envelope_protocol_other_than_binary_or_compact_is_rejected() -> None:
    with pytest.raises(ValueError, match="kafka_envelope_protocol"):
        KafkaSettings(kafka_envelope_protocol="json")
