"""The topic id request: its bytes as Kafka's schema lays them out, and what each answer yields.

tests/contracts/test_kafka_clients.py asks a real Kafka; these cover the answers it seldom gives.
"""

from __future__ import annotations

from io import BytesIO

import pytest
from aiokafka.errors import (
    IncompatibleBrokerVersion,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from minimess.adapters.kafka.topic_ids import (
    MetadataRequestV10,
    MetadataResponseV10,
    TopicIdsRequest,
    Uuid,
    topic_id,
)

# An id and how Kafka's tools print it.
RAW_ID = bytes.fromhex("590e9b7f6ad44690b2ee9e647d2489c2")
PRINTED_ID = "WQ6bf2rURpCy7p5kfSSJwg"
NO_OPERATIONS = -(2**31)
METADATA_VERSIONS = (0, 13)  # the Metadata versions a broker accepts: v10 among them


class OneBroker:
    """A cluster of one broker that prepares each request as a connection would, and gives one answer."""

    def __init__(self, answer: object, versions: tuple[int, int] = METADATA_VERSIONS) -> None:
        self.answer = answer
        self.versions = versions
        self.node: int | None = 1
        self.sent: list[tuple[int, MetadataRequestV10]] = []

    def get_random_node(self) -> int | None:
        return self.node

    async def send(self, node_id: int, request: TopicIdsRequest) -> object:
        self.sent.append((node_id, request.prepare({3: self.versions})))
        return self.answer


def answer(*topics: tuple[int, str, bytes]) -> MetadataResponseV10:
    """A Metadata v10 answer about `topics` (error code, name, id), as read from its bytes."""
    partitions: list[tuple[object, ...]] = [(0, 0, 1, 0, [1], [1], [], {})]
    described: list[tuple[object, ...]] = [
        (code, name, raw, False, partitions, NO_OPERATIONS, {}) for code, name, raw in topics
    ]
    brokers: list[tuple[object, ...]] = [(1, "localhost", 9092, None, {})]
    response = MetadataResponseV10(0, brokers, "cluster", 1, described, NO_OPERATIONS, {})
    decoded = MetadataResponseV10.decode(response.encode())
    assert isinstance(decoded, MetadataResponseV10)
    return decoded


def test_the_request_asks_for_topics_by_name_in_metadata_v10_and_never_creates_them() -> None:
    request = TopicIdsRequest(["news"]).prepare({3: METADATA_VERSIONS})
    assert isinstance(request, MetadataRequestV10)
    assert request.encode() == (
        b"\x02"  # a compact array of one topic
        + bytes(16)  # its id: zero, asked by name (v12 and later take an id)
        + b"\x05news"  # its name, a compact string
        + b"\x00"  # the topic's tagged fields
        + b"\x00"  # allow_auto_topic_creation: false
        + b"\x00\x00"  # neither cluster nor topic authorized operations
        + b"\x00"  # the request's tagged fields
    )
    # A flexible version: the request header ends in tagged fields too.
    assert request.build_request_header(correlation_id=7, client_id="c").encode() == (
        b"\x00\x03\x00\x0a\x00\x00\x00\x07\x00\x01c\x00"
    )


def test_a_broker_without_metadata_v10_is_an_incompatible_broker() -> None:
    with pytest.raises(IncompatibleBrokerVersion):
        TopicIdsRequest(["news"]).prepare({3: (0, 9)})


async def test_the_id_of_the_topic_asked_is_printed_as_kafkas_tools_print_it() -> None:
    broker = OneBroker(answer((0, "other", bytes(range(16))), (0, "news", RAW_ID)))
    assert await topic_id(broker, "news") == PRINTED_ID
    [(node, request)] = broker.sent
    assert node == 1
    assert request.topics == [(bytes(16), "news", {})]


@pytest.mark.parametrize(
    ("topics", "error", "says"),
    [
        ([(3, "news", bytes(16))], UnknownTopicOrPartitionError, "no id for topic news"),
        ([(29, "news", RAW_ID)], TopicAuthorizationFailedError, "no id for topic news"),
        ([(0, "news", bytes(16))], KafkaError, "gave topic news no id"),
        ([(0, "other", RAW_ID)], KafkaError, "did not answer for topic news"),
    ],
    ids=["unknown", "error-code", "zero-id", "not-in-answer"],
)
async def test_an_answer_without_the_topics_id_raises_a_kafka_error(
    topics: list[tuple[int, str, bytes]], error: type[KafkaError], says: str
) -> None:
    with pytest.raises(error, match=says):
        await topic_id(OneBroker(answer(*topics)), "news")


async def test_no_known_broker_or_a_strange_answer_raises_a_kafka_error() -> None:
    broker = OneBroker(answer((0, "news", RAW_ID)))
    broker.node = None
    with pytest.raises(KafkaConnectionError):
        await topic_id(broker, "news")
    assert broker.sent == []
    with pytest.raises(KafkaError, match="unexpected answer"):
        await topic_id(OneBroker(object()), "news")


def test_a_uuid_is_sixteen_bytes() -> None:
    assert Uuid.decode(BytesIO(RAW_ID + b"rest")) == RAW_ID
    with pytest.raises(ValueError, match="16 bytes"):
        Uuid.encode(RAW_ID[:15])
    with pytest.raises(ValueError, match="underrun"):
        Uuid.decode(BytesIO(RAW_ID[:15]))
