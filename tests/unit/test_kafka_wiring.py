"""--broker kafka without a Kafka: its settings, CLI options, container wiring and the broker's own guards."""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from structlog.testing import capture_logs
from typer.testing import CliRunner

from minimess.adapters.kafka import broker as kafka_broker
from minimess.adapters.kafka.broker import KafkaBroker, _Attachment
from minimess.adapters.kafka.envelope import Envelope, decode, encode
from minimess.adapters.memory import MemoryBroker
from minimess.adapters.websocket.server import WebSocketServer
from minimess.app import cli
from minimess.app.container import build_container
from minimess.app.settings import ServerSettings
from minimess.domain.errors import BrokerUnavailable
from minimess.domain.model import Message, Topic, Uid
from tests.timeouts import scaled

KAFKA_VARIABLES = (
    "MINIMESS_BROKER",
    "MINIMESS_NODE_ID",
    "MINIMESS_PORT",
    "MINIMESS_KAFKA_BOOTSTRAP",
    "MINIMESS_KAFKA_TOPIC",
    "MINIMESS_KAFKA_PARTITIONS",
    "MINIMESS_PUBLISH_TIMEOUT",
)
# A wide terminal, so that rich does not fold help lines in the middle of a name.
WIDE = {"COLUMNS": "250", "TERMINAL_WIDTH": "250"}
# Nothing listens on port 1: a broker pointed there can only fail, and these tests never let it try.
NOWHERE = "127.0.0.1:1"

WHEN = datetime(2026, 11, 28, 3, 55, 13, 123000, tzinfo=UTC)


def _message(body: str = "hi") -> Message:
    return Message(id="m1", topic=Topic("news"), sender=Uid("alice"), body=body, timestamp=WHEN)


def _broker(**changes: Any) -> KafkaBroker:
    arguments: dict[str, Any] = {
        "bootstrap": NOWHERE,
        "topic": "minimess.test",
        "partitions": 3,
        "publish_timeout": 5.0,
        "node_id": "eu-1",
    }
    return KafkaBroker(**{**arguments, **changes})


@pytest.fixture
def hostname(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fixed host name for node_name, whatever machine runs the tests."""
    monkeypatch.setattr(socket, "gethostname", lambda: "box")
    return "box"


# --- ServerSettings ------------------------------------------------------------------------------


def test_kafka_defaults_are_the_documented_ones() -> None:
    """Kafka on localhost:9092, topic minimess.messages with 12 partitions, a 5 s publish deadline."""
    settings = ServerSettings()
    assert settings.kafka_bootstrap == "localhost:9092"
    assert settings.kafka_topic == "minimess.messages"
    assert settings.kafka_partitions == 12
    assert settings.publish_timeout == 5
    assert settings.broker == "memory"


def test_the_kafka_broker_kind_is_accepted() -> None:
    """broker="kafka" is one of the valid kinds."""
    assert ServerSettings(broker="kafka").broker == "kafka"


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
    settings = ServerSettings(**changes)
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
    ],
    ids=[
        "partitions-0",
        "partitions-negative",
        "timeout-0",
        "timeout-negative",
        "timeout-nan",
        "timeout-inf",
    ],
)
def test_kafka_out_of_range_values_are_rejected(changes: dict[str, Any]) -> None:
    """No partitions, or a publish deadline that is not a positive finite time, raise ValueError naming it."""
    (name,) = changes
    with pytest.raises(ValueError, match=name):
        ServerSettings(**changes)


@pytest.mark.parametrize(
    "topic",
    ["", "has space", "slash/topic", "t" * 250, "ünïcode"],
    ids=["empty", "space", "slash", "too-long", "non-ascii"],
)
def test_a_name_kafka_would_refuse_as_a_topic_is_rejected(topic: str) -> None:
    """Kafka topic names are [a-zA-Z0-9._-]{1,249}; another would leave the server unready for ever."""
    with pytest.raises(ValueError, match="kafka_topic"):
        ServerSettings(kafka_topic=topic)


def test_node_name_is_the_node_id_when_given(hostname: str) -> None:
    """--node-id names the server, whatever its host and port."""
    assert ServerSettings(node_id="eu-1", port=9001).node_name == "eu-1"


def test_node_name_defaults_to_hostname_and_port(hostname: str) -> None:
    """Without --node-id the server is hostname:port."""
    assert ServerSettings(port=9001).node_name == "box:9001"
    assert ServerSettings().node_name == "box:8080"


def test_node_name_uses_the_real_host_name() -> None:
    """The default name is built from socket.gethostname()."""
    assert ServerSettings(port=9001).node_name == f"{socket.gethostname()}:9001"


# --- the container -------------------------------------------------------------------------------


class NetworkUse:
    """Records any attempt to open a connection or build an aiokafka client."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def refuse(self, what: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            self.attempts.append(what)
            raise AssertionError(f"{what} called while only building objects")

        return refused


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> NetworkUse:
    """Make every way the Kafka broker could reach the network fail loudly and be recorded."""
    use = NetworkUse()
    for name in ("AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient"):
        monkeypatch.setattr(kafka_broker, name, use.refuse(name))
    monkeypatch.setattr(socket.socket, "connect", use.refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", use.refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", use.refuse("socket.create_connection"))
    return use


def test_kind_kafka_selects_a_kafka_broker_configured_from_the_settings(network: NetworkUse) -> None:
    """bootstrap, topic, partitions, publish deadline and node name reach the KafkaBroker."""
    settings = ServerSettings(
        broker="kafka",
        kafka_bootstrap=NOWHERE,
        kafka_topic="chat.bus",
        kafka_partitions=3,
        publish_timeout=0.25,
        node_id="eu-1",
    )
    broker = build_container(settings).broker()
    assert isinstance(broker, KafkaBroker)
    assert broker._config.bootstrap == NOWHERE
    assert broker._config.topic == "chat.bus"
    assert broker._config.partitions == 3
    assert broker._config.publish_timeout == 0.25
    assert broker._config.node_id == "eu-1"


def test_the_kafka_broker_is_named_hostname_port_without_node_id(hostname: str) -> None:
    """Without --node-id the broker's node id (in envelopes and client ids) is the default node name."""
    broker = build_container(ServerSettings(broker="kafka", port=9001)).broker()
    assert isinstance(broker, KafkaBroker)
    assert broker._config.node_id == "box:9001"


def test_building_the_kafka_graph_does_not_touch_the_network(network: NetworkUse) -> None:
    """Broker, use cases and server are built without a connection, a client or a task: nothing runs yet."""
    container = build_container(ServerSettings(broker="kafka", kafka_bootstrap=NOWHERE))
    broker, messaging, server = container.broker(), container.messaging(), container.server()
    assert isinstance(broker, KafkaBroker)
    assert messaging._broker is broker
    assert server._broker is broker
    assert container.broker() is broker
    assert not broker.is_ready()
    assert broker._attachments == []
    assert broker.undecodable_records == 0
    assert network.attempts == []


def test_kind_memory_never_constructs_a_kafka_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the memory broker the whole graph is built and no KafkaBroker is ever made."""
    constructed: list[dict[str, Any]] = []
    original = KafkaBroker.__init__

    def recording_init(self: KafkaBroker, **kwargs: Any) -> None:
        constructed.append(kwargs)
        original(self, **kwargs)

    monkeypatch.setattr(KafkaBroker, "__init__", recording_init)
    container = build_container(ServerSettings(broker="memory"))
    container.server()
    assert isinstance(container.broker(), MemoryBroker)
    assert constructed == []
    # The recorder does see a construction: the kafka kind makes exactly one, however often resolved.
    kafka = build_container(ServerSettings(broker="kafka", node_id="n"))
    kafka.server()
    kafka.broker()
    assert len(constructed) == 1


# --- the CLI -------------------------------------------------------------------------------------


class Served:
    """What `serve` would have run with: the server's settings and its broker."""

    def __init__(self) -> None:
        self.settings: list[ServerSettings] = []
        self.brokers: list[object] = []


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, network: NetworkUse) -> Served:
    """Replace the server's run and the logging setup by recorders, so that nothing listens or connects."""
    served = Served()

    async def run(self: WebSocketServer, stop: object = None) -> None:
        served.settings.append(self._settings)
        served.brokers.append(self._broker)

    monkeypatch.setattr(WebSocketServer, "run", run)
    monkeypatch.setattr(cli, "configure_logging", lambda level="info", log_format="auto": None)
    # A MINIMESS_* variable of the developer's shell must not change what the tests see.
    for variable in KAFKA_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    return served


def _invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli.app, ["serve", *args], env={**WIDE, **(env or {})})


KAFKA_FLAGS = {
    "--broker": "kafka",
    "--node-id": "eu-1",
    "--kafka-bootstrap": "k1:9092,k2:9093",
    "--kafka-topic": "chat.bus",
    "--kafka-partitions": "3",
    "--publish-timeout": "0.25",
}
KAFKA_EXPECTED = ServerSettings(
    broker="kafka",
    node_id="eu-1",
    kafka_bootstrap="k1:9092,k2:9093",
    kafka_topic="chat.bus",
    kafka_partitions=3,
    publish_timeout=0.25,
)


def _variable(flag: str) -> str:
    return "MINIMESS_" + flag.removeprefix("--").replace("-", "_").upper()


def test_kafka_flags_reach_the_settings_and_the_broker(served: Served) -> None:
    """--broker kafka and the Kafka options land in ServerSettings and in the server's KafkaBroker."""
    result = _invoke(*(f"{flag}={value}" for flag, value in KAFKA_FLAGS.items()))
    assert result.exit_code == 0, result.output
    assert served.settings == [KAFKA_EXPECTED]
    (broker,) = served.brokers
    assert isinstance(broker, KafkaBroker)
    assert (
        broker._config.bootstrap,
        broker._config.topic,
        broker._config.partitions,
        broker._config.publish_timeout,
    ) == (
        "k1:9092,k2:9093",
        "chat.bus",
        3,
        0.25,
    )
    assert broker._config.node_id == "eu-1"
    assert not broker.is_ready()


def test_kafka_environment_variables_reach_the_settings(served: Served) -> None:
    """MINIMESS_BROKER, MINIMESS_KAFKA_* and MINIMESS_PUBLISH_TIMEOUT set the same settings as the flags."""
    env = {_variable(flag): value for flag, value in KAFKA_FLAGS.items()}
    assert set(env) <= set(KAFKA_VARIABLES)
    result = _invoke(env=env)
    assert result.exit_code == 0, result.output
    assert served.settings == [KAFKA_EXPECTED]
    assert isinstance(served.brokers[0], KafkaBroker)


def test_kafka_flags_win_over_their_environment_variables(served: Served) -> None:
    """The command line overrides MINIMESS_KAFKA_TOPIC and MINIMESS_PUBLISH_TIMEOUT."""
    env = {
        "MINIMESS_KAFKA_TOPIC": "from.env",
        "MINIMESS_PUBLISH_TIMEOUT": "9",
        "MINIMESS_KAFKA_PARTITIONS": "2",
    }
    result = _invoke("--kafka-topic=from.flag", "--publish-timeout=1.5", env=env)
    assert result.exit_code == 0, result.output
    (settings,) = served.settings
    assert (settings.kafka_topic, settings.publish_timeout, settings.kafka_partitions) == (
        "from.flag",
        1.5,
        2,
    )


def test_without_kafka_options_the_kafka_settings_are_the_defaults(served: Served) -> None:
    """`serve --broker kafka` alone uses localhost:9092, minimess.messages, 12 partitions and 5 s."""
    result = _invoke("--broker=kafka")
    assert result.exit_code == 0, result.output
    assert served.settings == [ServerSettings(broker="kafka")]


def test_the_memory_broker_is_served_by_default(served: Served) -> None:
    """Without --broker the server gets the memory broker, even with Kafka options given."""
    result = _invoke("--kafka-topic=unused")
    assert result.exit_code == 0, result.output
    assert isinstance(served.brokers[0], MemoryBroker)


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--kafka-partitions=0",), {}),
        (("--kafka-partitions=many",), {}),
        (("--publish-timeout=0",), {}),
        (("--publish-timeout=-1",), {}),
        ((), {"MINIMESS_KAFKA_PARTITIONS": "0"}),
        ((), {"MINIMESS_PUBLISH_TIMEOUT": "soon"}),
    ],
)
def test_invalid_kafka_values_are_usage_errors(
    served: Served, args: tuple[str, ...], env: dict[str, str]
) -> None:
    """A Kafka option outside its range, by flag or variable, exits with 2 before any server starts."""
    result = _invoke("--broker=kafka", *args, env=env)
    assert result.exit_code == 2, result.output
    assert served.settings == []


# --- KafkaBroker without Kafka -------------------------------------------------------------------


async def test_publish_without_attach_is_refused_at_once() -> None:
    """Never attached, hence never connected: publish raises BrokerUnavailable without waiting."""
    broker = _broker(publish_timeout=30.0)
    async with asyncio.timeout(scaled(1)):
        with pytest.raises(BrokerUnavailable):
            await broker.publish(_message())
    assert not broker.is_ready()


class FakeProducer:
    """The part of AIOKafkaProducer that publish uses; each send is acked, failed or left hanging."""

    def __init__(self, outcome: str) -> None:
        self.outcome = outcome
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        self.sent.append((topic, value, key))
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.outcome == "ack":
            delivery.set_result(None)
        elif self.outcome == "fail":
            delivery.set_exception(KafkaConnectionError("broker went away"))
        return delivery


def _connected(broker: KafkaBroker, producer: FakeProducer) -> KafkaBroker:
    """`broker` attached once, as its supervisor leaves it once the clients work."""
    attachment = _Attachment(broker._config, lambda _message: None, broker)
    attachment.producer = producer
    attachment.ready = True
    broker._attachments.append(attachment)
    return broker


def _deliver_record(broker: KafkaBroker, record: Any, deliver: Callable[[Message], None]) -> None:
    """Hand `record` to a reader of `broker` that delivers to `deliver`."""
    _Attachment(broker._config, deliver, broker)._deliver_record(record)


async def test_publish_sends_one_envelope_keyed_by_the_minimess_topic() -> None:
    """The record goes to the Kafka topic, keyed by the minimess topic, valued by the envelope."""
    producer = FakeProducer("ack")
    broker = _connected(_broker(topic="chat.bus", node_id="eu-1"), producer)
    message = _message()
    async with asyncio.timeout(scaled(1)):
        await broker.publish(message)
    ((topic, value, key),) = producer.sent
    assert (topic, key) == ("chat.bus", b"news")
    assert decode(value) == Envelope(message=message, origin_node="eu-1")


async def test_publish_that_kafka_refuses_is_broker_unavailable() -> None:
    """A KafkaError while the record is delivered becomes BrokerUnavailable."""
    broker = _connected(_broker(), FakeProducer("fail"))
    async with asyncio.timeout(scaled(1)):
        with pytest.raises(BrokerUnavailable, match="refused"):
            await broker.publish(_message())


async def test_publish_that_kafka_never_acknowledges_ends_at_the_deadline() -> None:
    """A record Kafka never acks ends in BrokerUnavailable after publish_timeout, not a hang."""
    broker = _connected(_broker(publish_timeout=0.05), FakeProducer("hang"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(scaled(2)):
        with pytest.raises(BrokerUnavailable, match=r"0\.05 s"):
            await broker.publish(_message())
    assert loop.time() - started >= 0.05


def _record(value: bytes | None, offset: int = 41, partition: int = 7) -> Any:
    # CreateTime records: the late-record check applies to LogAppendTime only.
    return SimpleNamespace(value=value, partition=partition, offset=offset, timestamp_type=0, timestamp=0)


@pytest.mark.parametrize("value", [b"\xff\x00garbage", b"", None], ids=["garbage", "empty", "tombstone"])
def test_an_undecodable_record_is_logged_counted_and_skipped(value: bytes | None) -> None:
    """A record that is no envelope is logged with its partition and offset, counted, and not delivered."""
    broker = _broker()
    delivered: list[Message] = []
    with capture_logs() as logs:
        _deliver_record(broker, _record(value), delivered.append)
    assert delivered == []
    assert broker.undecodable_records == 1
    (entry,) = [entry for entry in logs if entry["event"] == "kafka_record_skipped"]
    assert (entry["partition"], entry["offset"]) == (7, 41)
    assert entry["log_level"] == "warning"


def test_a_good_record_after_a_bad_one_is_delivered() -> None:
    """Skipping a bad record does not disturb the next one."""
    broker = _broker()
    delivered: list[Message] = []
    message = _message()
    _deliver_record(broker, _record(b"junk", offset=1), delivered.append)
    _deliver_record(broker, _record(encode(Envelope(message, "eu-2")), offset=2), delivered.append)
    assert delivered == [message]
    assert broker.undecodable_records == 1


def test_a_failing_deliver_callback_does_not_escape_the_consumer() -> None:
    """As with the memory broker, a deliver that raises is logged as delivery_failed and the record is done.

    If it escaped, the supervisor would tear down and rebuild both Kafka clients (and report not
    ready) because of one server-side bug or one message the hub cannot render.
    """
    broker = _broker()

    def failing(_message: Message) -> None:
        raise RuntimeError("server bug")

    with capture_logs() as logs:
        _deliver_record(broker, _record(encode(Envelope(_message(), "eu-2"))), failing)
    assert [entry["event"] for entry in logs] == ["delivery_failed"]


def test_the_broker_is_ready_only_when_every_reader_is() -> None:
    """With two readers attached, one still connecting, the broker is not ready: it would miss messages."""
    broker = _connected(_broker(), FakeProducer("ack"))
    assert broker.is_ready()
    broker._attachments.append(_Attachment(broker._config, lambda _message: None, broker))
    assert not broker.is_ready()
