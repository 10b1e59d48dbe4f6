"""What build_container wires from the settings: the bus it selects, the service on that bus, the metrics."""

from __future__ import annotations

import pytest

from minimess.adapters.kafka.broker import KafkaBroker
from minimess.adapters.kafka.settings import KafkaSettings
from minimess.adapters.memory import MemoryBroker
from minimess.adapters.websocket_server.settings import WebSocketSettings
from minimess.app.settings import MessagingSettings
from minimess.bootstrap.server import Container, build_container
from minimess.bootstrap.settings import BROKERS, ServeSettings
from minimess.domain.errors import TooManyTopics
from minimess.domain.model import Message, Topic, Uid
from minimess.domain.ports import Room

BUSES = {"memory": MemoryBroker, "kafka": KafkaBroker}


class Discard:
    def push(self, frame: bytes) -> None:
        pass

    def room(self) -> Room:
        return Room(1_000_000, 2**30)


def test_the_brokers_the_settings_accept_are_the_ones_the_server_can_build() -> None:
    """--broker is checked against a list of names, so that the settings need not import the buses.

    The local channel is not one of them: a worker of --workers N on the memory bus is put on it.
    """
    assert tuple(Container.broker.providers) == (*BROKERS, "channel")


@pytest.mark.parametrize("kind", BROKERS)
def test_the_broker_setting_selects_the_bus_and_the_server_builds_on_it(kind: str) -> None:
    """Building connects to nothing, so this holds without a Kafka too."""
    container = build_container(ServeSettings(broker=kind))
    assert isinstance(container.broker(), BUSES[kind])
    container.server()


async def test_the_service_publishes_on_the_containers_bus() -> None:
    container = build_container(ServeSettings(broker="memory"))
    service = container.service()
    received: list[Message] = []
    async with container.broker().receiving(received.append):
        message = await service.publish(service.connect(Uid("alice"), Discard()), Topic("news"), "hi")
    assert received == [message]


def test_max_topics_reaches_the_service() -> None:
    service = build_container(ServeSettings(messaging=MessagingSettings(max_topics=1))).service()
    session = service.connect(Uid("alice"), Discard())
    service.subscribe(session, Topic("a"))
    with pytest.raises(TooManyTopics):
        service.subscribe(session, Topic("b"))


@pytest.mark.parametrize(("max_age", "collections"), [(1.0, 1), (0.0, 2)])
def test_metrics_max_age_reaches_the_metrics(max_age: float, collections: int) -> None:
    """Within the max age a second /metrics is the first one's bytes; with 0 it is collected again."""
    settings = ServeSettings(server=WebSocketSettings(metrics_max_age=max_age))
    metrics = build_container(settings).metrics()
    first, _ = metrics.exposition()
    second, _ = metrics.exposition()
    assert len({id(first), id(second)}) == collections


def test_the_start_line_names_the_bus_and_for_kafka_its_address_and_topic() -> None:
    assert ServeSettings(broker="memory").bus_summary == {"broker": "memory"}
    kafka = ServeSettings(broker="kafka", kafka=KafkaSettings(kafka_bootstrap="k1:9092", kafka_topic="chat"))
    assert kafka.bus_summary == {"broker": "kafka", "kafka_bootstrap": "k1:9092", "kafka_topic": "chat"}
