"""`minimess serve` on a Kafka that authenticates with SASL/PLAIN and checks ACLs, as clients see it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import TopicAuthorizationFailedError
from aiokafka.protocol.admin import CreateAclsRequest

from minimess.adapters.kafka import envelope
from minimess.adapters.kafka.envelope import Envelope
from minimess.domain.model import Message, Topic, Uid
from tests.integration.kafka_process import (
    KafkaProcess,
    KafkaUnavailable,
    fresh_kafka_topic,
    kafka_serve_args,
    kafka_unavailable,
)
from tests.integration.server_process import LogEvent, ServerProcess, wait_status
from tests.integration.wire import http_get, logged, next_frame, open_client, publish, send_frame
from tests.timeouts import scaled

pytestmark = pytest.mark.integration

# The servers' Kafka user, and one that may read the topic but not write it (an audit job, say).
SERVER_USER, SERVER_PASSWORD = "minimess", "server-secret"
READER_USER, READER_PASSWORD = "reader", "reader-secret"
# fresh_kafka_topic names every topic with this prefix; the ACLs are granted on it.
TOPIC_PREFIX = "minimess-test-"
TOPIC = "room"
# Until a server answers /readyz 200: it creates the Kafka topic and connects its clients first.
READY_WITHIN = 20.0

# Kafka's codes for ACL bindings (org.apache.kafka.common.acl and .resource).
RESOURCE_TOPIC, PATTERN_PREFIXED, ALLOW = 2, 4, 3
READ, WRITE, CREATE, DESCRIBE = 3, 4, 5, 8

StartServer = Callable[..., ServerProcess]


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaProcess]:
    """A Kafka whose SASL_PLAINTEXT listener knows both users and checks ACLs.

    The servers' user may create, describe, read and write the test topics: what a server needs.
    The reader may describe and read them. Neither is a super user.
    """
    process = KafkaProcess(
        tmp_path_factory.mktemp("kafka-sasl"),
        sasl_users={SERVER_USER: SERVER_PASSWORD, READER_USER: READER_PASSWORD},
        acls=True,
    )
    try:
        try:
            process.start()
        except KafkaUnavailable as error:
            kafka_unavailable(str(error))
        asyncio.run(
            grant(process, {SERVER_USER: (CREATE, DESCRIBE, READ, WRITE), READER_USER: (DESCRIBE, READ)})
        )
        yield process
    finally:
        process.stop()


async def grant(kafka: KafkaProcess, operations: dict[str, tuple[int, ...]]) -> None:
    """Allow each user these operations on the topics named TOPIC_PREFIX…

    Sent on the PLAINTEXT listener, whose anonymous users scripts/kafka makes super users.
    """
    client = AIOKafkaClient(bootstrap_servers=kafka.bootstrap, client_id="tests")
    await client.bootstrap()
    try:
        node = client.get_random_node()
        for user, allowed in operations.items():
            for operation in allowed:
                request = CreateAclsRequest(
                    RESOURCE_TOPIC, TOPIC_PREFIX, PATTERN_PREFIXED, f"User:{user}", "*", operation, ALLOW
                )
                response = await client.send(node, request)
                assert [code for code, _ in response.creation_responses] == [0], response
    finally:
        await client.close()


def sasl_serve_args(kafka: KafkaProcess, topic: str, node: str, password_file: Path) -> tuple[str, ...]:
    """`minimess serve` options for a server that reaches `kafka` as SERVER_USER, with this password."""
    plain = kafka_serve_args(kafka, topic, node, partitions=1)
    bootstrap = plain.index("--kafka-bootstrap") + 1
    return (
        *plain[:bootstrap], kafka.sasl_bootstrap, *plain[bootstrap + 1 :],
        "--kafka-security-protocol", "SASL_PLAINTEXT",
        "--kafka-sasl-username", SERVER_USER,
        "--kafka-sasl-password-file", str(password_file),
    )  # fmt: skip


def password_file(tmp_path: Path, password: str) -> Path:
    path = tmp_path / f"password-{password}"
    path.write_text(password + "\n")
    return path


async def test_servers_authenticated_with_sasl_plain_carry_a_message_through_kafka(
    secure_kafka: KafkaProcess, start_server: StartServer, tmp_path: Path
) -> None:
    """Two servers log in as the servers' user, who has ACLs but is no super user: s1's message reaches s2."""
    topic = fresh_kafka_topic()
    secret = password_file(tmp_path, SERVER_PASSWORD)
    s1, s2 = (start_server(*sasl_serve_args(secure_kafka, topic, node, secret)) for node in ("s1", "s2"))
    for server in (s1, s2):
        await asyncio.to_thread(wait_status, server, "/readyz", 200, READY_WITHIN)
    watcher = await open_client(s2, "watcher", TOPIC)
    publisher = await open_client(s1, "publisher")
    try:
        ack = await publish(publisher, TOPIC, "over SASL", "1")
        message = await next_frame(watcher, "message", within=15)
        assert (message["id"], message["from"], message["body"]) == (ack["id"], "publisher", "over SASL")
    finally:
        await asyncio.gather(watcher.close(), publisher.close())


def sasl_refused(event: LogEvent) -> bool:
    """aiokafka's line saying why it could not connect: Kafka refused the credentials."""
    return event.get("logger") == "aiokafka" and "SaslAuthenticationFailed" in str(event.get("event"))


async def test_a_server_with_a_wrong_password_stays_unready_and_refuses_publishes(
    secure_kafka: KafkaProcess, start_server: StartServer, tmp_path: Path
) -> None:
    """Kafka refuses the login: the server keeps serving, answers /readyz 503, refuses publishes with
    `broker_unavailable`, and retries once a second; the log says so once, not once an attempt."""
    wrong = password_file(tmp_path, "not-the-password")
    server = start_server(*sasl_serve_args(secure_kafka, fresh_kafka_topic(), "s1", wrong))
    await asyncio.to_thread(server.log.wait_for, sasl_refused, 1, READY_WITHIN, "SASL refusals")
    await logged(server, "kafka_unavailable", within=READY_WITHIN)

    status, _ = await http_get(server, "/readyz")
    assert status == 503
    client = await open_client(server, "alice")
    try:
        await send_frame(client, type="pub", topic=TOPIC, body="hello", ref="r1")
        error = await next_frame(client, "error")
        assert (error["code"], error["ref"]) == ("broker_unavailable", "r1"), error
    finally:
        await client.close()
    # It retries: the refusals of the attempts after the first come as one line with their count,
    # when the first one's 10 s are over.
    await asyncio.to_thread(
        server.log.wait_for,
        lambda event: sasl_refused(event) and event.get("repeated", 0) >= 2,
        1,
        READY_WITHIN,
        "a count of SASL refusals",
    )
    events = server.events
    assert [event.get("event") for event in events].count("kafka_unavailable") == 1
    # A line an attempt would be 20 or more by now: aiokafka's clear-text warning and its refusal.
    about_kafka = [event for event in events if str(event.get("logger", "")).startswith("aiokafka")]
    assert len(about_kafka) <= 6, about_kafka
    assert not server.logged_so_far("kafka_connected")


async def test_a_user_without_write_on_the_topic_cannot_post_to_it(
    secure_kafka: KafkaProcess, start_server: StartServer, tmp_path: Path
) -> None:
    """Whoever can write to the Kafka topic can post as anyone; the ACLs deny that to the reader.

    The reader logs in (it may read the topic) and sends a forged envelope from alice straight to
    Kafka: refused. The server's subscriber gets the next honest message and nothing before it.
    """
    topic = fresh_kafka_topic()
    server = start_server(
        *sasl_serve_args(secure_kafka, topic, "s1", password_file(tmp_path, SERVER_PASSWORD))
    )
    await asyncio.to_thread(wait_status, server, "/readyz", 200, READY_WITHIN)
    watcher = await open_client(server, "watcher", TOPIC)
    publisher = await open_client(server, "publisher")
    forger = AIOKafkaProducer(
        bootstrap_servers=secure_kafka.sasl_bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_plain_username=READER_USER,
        sasl_plain_password=READER_PASSWORD,
        request_timeout_ms=round(scaled(10) * 1000),
    )
    try:
        await forger.start()
        forged = Message.create(Topic(TOPIC), Uid("alice"), "forged", datetime.now(UTC))
        value = envelope.encode(Envelope(message=forged, origin_node="s1"))
        with pytest.raises(TopicAuthorizationFailedError):
            await forger.send_and_wait(topic, value, key=TOPIC.encode(), partition=0)

        ack = await publish(publisher, TOPIC, "honest", "1")
        message = await next_frame(watcher, "message", within=15)
        assert (message["id"], message["from"], message["body"]) == (ack["id"], "publisher", "honest")
    finally:
        await forger.stop()
        await asyncio.gather(watcher.close(), publisher.close())
