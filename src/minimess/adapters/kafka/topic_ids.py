"""Asking Kafka for a topic's id (KIP-516), which names the topic's current incarnation."""

from __future__ import annotations

import base64
from io import BytesIO
from typing import Protocol

from aiokafka.errors import IncompatibleBrokerVersion, KafkaConnectionError, KafkaError, for_code
from aiokafka.protocol.abstract import AbstractType
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

# aiokafka implements Metadata v0-v5 only, and topic ids arrive from v10 on (KIP-516; every Kafka
# from 2.8 to 4.x accepts v10). aiokafka's protocol module has every building block of a flexible
# version but the uuid type, so the request and its response are spelled here, field by field as
# Kafka's MetadataRequest.json and MetadataResponse.json define v10.
METADATA = 3
ZERO_UUID = bytes(16)
NO_TAGS: dict[int, bytes] = {}


class Uuid(AbstractType[bytes]):
    """Kafka's uuid type: 16 bytes, the most significant first."""

    @classmethod
    def encode(cls, value: bytes) -> bytes:
        if len(value) != 16:
            raise ValueError(f"a uuid is 16 bytes, not {len(value)}")
        return value

    @classmethod
    def decode(cls, data: BytesIO) -> bytes:
        value = data.read(16)
        if len(value) != 16:
            raise ValueError("Buffer underrun decoding uuid")
        return value


class MetadataResponseV10(Response):
    API_KEY = METADATA
    API_VERSION = 10
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "brokers",
            CompactArray(
                ("node_id", Int32),
                ("host", CompactString("utf-8")),
                ("port", Int32),
                ("rack", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("cluster_id", CompactString("utf-8")),
        ("controller_id", Int32),
        (
            "topics",
            CompactArray(
                ("error_code", Int16),
                ("name", CompactString("utf-8")),
                ("topic_id", Uuid),
                ("is_internal", Boolean),
                (
                    "partitions",
                    CompactArray(
                        ("error_code", Int16),
                        ("partition_index", Int32),
                        ("leader_id", Int32),
                        ("leader_epoch", Int32),
                        ("replica_nodes", CompactArray(Int32)),
                        ("isr_nodes", CompactArray(Int32)),
                        ("offline_replicas", CompactArray(Int32)),
                        ("tags", TaggedFields),
                    ),
                ),
                ("topic_authorized_operations", Int32),
                ("tags", TaggedFields),
            ),
        ),
        ("cluster_authorized_operations", Int32),
        ("tags", TaggedFields),
    )


class MetadataRequestV10(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = METADATA
    API_VERSION = 10
    RESPONSE_TYPE = MetadataResponseV10
    SCHEMA = Schema(
        # Each topic by name: Kafka accepts a topic id here from v12 only, so v10 sends the zero uuid.
        (
            "topics",
            CompactArray(("topic_id", Uuid), ("name", CompactString("utf-8")), ("tags", TaggedFields)),
        ),
        ("allow_auto_topic_creation", Boolean),
        ("include_cluster_authorized_operations", Boolean),
        ("include_topic_authorized_operations", Boolean),
        ("tags", TaggedFields),
    )


class TopicIdsRequest(Request[MetadataRequestV10]):
    """The metadata of some topics by name, with their ids; it never creates a topic."""

    API_KEY = METADATA

    def __init__(self, topics: list[str]) -> None:
        self.topics = topics

    def build(self, request_struct_class: type[MetadataRequestV10]) -> MetadataRequestV10:
        topics = [(ZERO_UUID, name, NO_TAGS) for name in self.topics]
        # An unknown topic is an answer here: asking must not create it (brokers auto-create by default).
        return request_struct_class(topics, False, False, False, NO_TAGS)

    def prepare(self, versions: dict[int, tuple[int, int]]) -> MetadataRequestV10:
        try:
            request: MetadataRequestV10 = super().prepare(versions)
        except NotImplementedError as error:
            # aiokafka says NotImplementedError when no version fits; a broker older than 2.8 has no ids.
            raise IncompatibleBrokerVersion(f"Kafka has no topic ids before Metadata v10: {error}") from error
        return request


class MetadataClient(Protocol):
    """The part of aiokafka's cluster client that sends a request to one broker of the cluster."""

    def get_random_node(self) -> int | None: ...
    async def send(self, node_id: int, request: TopicIdsRequest) -> object: ...


def encode_id(raw: bytes) -> str:
    """A uuid as Kafka's tools print it: URL-safe base64 without padding, 22 characters."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


async def topic_id(client: MetadataClient, topic: str) -> str:
    """The id of the current incarnation of `topic`, as one broker of the cluster knows it.

    Raises KafkaError when no broker answers, the topic is unknown or has an error, or has no id.
    """
    node_id = client.get_random_node()
    if node_id is None:
        raise KafkaConnectionError("no broker of the cluster is known yet")
    response = await client.send(node_id, TopicIdsRequest([topic]))
    if not isinstance(response, MetadataResponseV10):
        raise KafkaError(f"unexpected answer to a topic id request: {response!r}")
    for error_code, name, raw_id, *_ in response.topics:
        if name != topic:
            continue
        if error_code:
            raise for_code(error_code)(f"no id for topic {topic}")
        if raw_id == ZERO_UUID:
            raise KafkaError(f"Kafka gave topic {topic} no id")
        return encode_id(raw_id)
    raise KafkaError(f"Kafka did not answer for topic {topic}")
