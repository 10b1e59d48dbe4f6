"""The behaviour every Broker must have, written once and run here against the memory broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from minimess.adapters.memory import MemoryBroker
from minimess.domain.model import Message, Topic, Uid
from minimess.domain.ports import Broker
from tests.timeouts import scaled

DELIVERY_WITHIN = 10.0
"""Seconds (before scaling) a published message may take to reach every attached server."""


class Deliveries:
    """One attached server's deliver callback: records the messages on one topic, in bus order."""

    def __init__(self, topic: Topic) -> None:
        self.topic = topic
        self.messages: list[Message] = []
        self._changed = asyncio.Event()

    def deliver(self, message: Message) -> None:
        if message.topic == self.topic:
            self.messages.append(message)
            self._changed.set()

    async def wait_for(self, count: int, within: float = DELIVERY_WITHIN) -> list[Message]:
        """The first `count` messages, once they have arrived; fails after `within` seconds."""
        try:
            async with asyncio.timeout(scaled(within)):
                while len(self.messages) < count:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"{count} messages expected on {self.topic} within {scaled(within)} s, got {self.messages}"
            ) from None
        return self.messages[:count]


def _message(topic: Topic, body: str) -> Message:
    return Message.create(topic, Uid("contract"), body, datetime.now(UTC))


async def _wait_until_ready(broker: Broker, within: float = DELIVERY_WITHIN) -> None:
    deadline = time.monotonic() + scaled(within)
    while not broker.is_ready():
        assert time.monotonic() < deadline, f"broker not ready within {scaled(within)} s"
        await asyncio.sleep(0.01)


class BrokerContract:
    """Behaviour tests for any Broker; a subclass provides the `broker` fixture.

    A broker for another bus reuses them from tests/integration by subclassing BrokerContract
    with a `broker` fixture (an async generator fixture if the broker needs starting). The tests
    wait for deliveries with a timeout instead of assuming they happen during `publish`, use a
    topic of their own, and ignore other topics, so they hold for a bus shared between tests.
    """

    @pytest.fixture
    def topic(self) -> Topic:
        """A topic no other test (or earlier run on a shared bus) publishes on."""
        return Topic(f"contract:{uuid.uuid4().hex}")

    async def test_every_attached_server_receives_a_published_message(
        self, broker: Broker, topic: Topic
    ) -> None:
        """With two servers attached, one publish reaches both deliver callbacks, exactly once each."""
        first, second = Deliveries(topic), Deliveries(topic)
        async with broker.attach(first.deliver), broker.attach(second.deliver):
            await _wait_until_ready(broker)
            message = _message(topic, "hello")
            await broker.publish(message)
            assert await first.wait_for(1) == [message]
            assert await second.wait_for(1) == [message]
            # A duplicate would arrive with later messages: publish a marker and look again.
            marker = _message(topic, "marker")
            await broker.publish(marker)
            assert await first.wait_for(2) == [message, marker]
            assert await second.wait_for(2) == [message, marker]
        assert first.messages == [message, marker]
        assert second.messages == [message, marker]

    async def test_messages_published_before_attaching_are_not_delivered(
        self, broker: Broker, topic: Topic
    ) -> None:
        """A server attaching after a publish never receives it, only what is published later."""
        witness = Deliveries(topic)
        async with broker.attach(witness.deliver):
            await _wait_until_ready(broker)
            before = _message(topic, "before")
            await broker.publish(before)
            # Once the witness has it, the bus has it: a later attach must not see it.
            await witness.wait_for(1)
            late = Deliveries(topic)
            async with broker.attach(late.deliver):
                after = _message(topic, "after")
                await broker.publish(after)
                assert await late.wait_for(1) == [after]
                assert await witness.wait_for(2) == [before, after]
            assert late.messages == [after]

    async def test_every_attached_server_sees_the_publish_order(self, broker: Broker, topic: Topic) -> None:
        """Messages published one after another reach every attached server in that order."""
        first, second = Deliveries(topic), Deliveries(topic)
        async with broker.attach(first.deliver), broker.attach(second.deliver):
            await _wait_until_ready(broker)
            published = [_message(topic, f"m{i}") for i in range(50)]
            for message in published:
                await broker.publish(message)
            assert await first.wait_for(len(published)) == published
            assert await second.wait_for(len(published)) == published

    async def test_concurrent_publishes_reach_every_server_in_one_order(
        self, broker: Broker, topic: Topic
    ) -> None:
        """Publishes in flight together may be ordered either way, but the same way for everybody."""
        first, second = Deliveries(topic), Deliveries(topic)
        async with broker.attach(first.deliver), broker.attach(second.deliver):
            await _wait_until_ready(broker)
            published = [_message(topic, f"m{i}") for i in range(20)]
            await asyncio.gather(*(broker.publish(message) for message in published))
            in_first = await first.wait_for(len(published))
            assert sorted(m.body for m in in_first) == sorted(m.body for m in published)
            assert await second.wait_for(len(published)) == in_first

    async def test_nothing_is_delivered_after_the_attach_context_exits(
        self, broker: Broker, topic: Topic
    ) -> None:
        """A detached server receives nothing more, while the servers still attached do."""
        staying, leaving = Deliveries(topic), Deliveries(topic)
        async with broker.attach(staying.deliver):
            async with broker.attach(leaving.deliver):
                await _wait_until_ready(broker)
                first = _message(topic, "first")
                await broker.publish(first)
                assert await leaving.wait_for(1) == [first]
            second = _message(topic, "second")
            await broker.publish(second)
            # When the server still attached has `second`, a detached one would have had it too.
            assert await staying.wait_for(2) == [first, second]
        assert leaving.messages == [first]

    async def test_is_ready_while_attached_and_usable(self, broker: Broker, topic: Topic) -> None:
        """Once attached to a reachable bus the broker says it is ready, and a publish goes through."""
        deliveries = Deliveries(topic)
        async with broker.attach(deliveries.deliver):
            await _wait_until_ready(broker)
            assert broker.is_ready()
            message = _message(topic, "ready")
            await broker.publish(message)
            assert await deliveries.wait_for(1) == [message]

    async def test_publish_returns_once_the_bus_accepted_the_message(
        self, broker: Broker, topic: Topic
    ) -> None:
        """`publish` completes within the deadline, and what it accepted is then delivered."""
        deliveries = Deliveries(topic)
        async with broker.attach(deliveries.deliver):
            await _wait_until_ready(broker)
            message = _message(topic, "accepted")
            async with asyncio.timeout(scaled(DELIVERY_WITHIN)):
                await broker.publish(message)
            assert await deliveries.wait_for(1) == [message]

    async def test_publish_on_a_topic_nobody_wants_is_accepted(self, broker: Broker, topic: Topic) -> None:
        """The bus accepts a message no server has a subscriber for: publish neither raises nor hangs."""
        elsewhere = Deliveries(Topic(f"{topic.name}:elsewhere"))
        async with broker.attach(elsewhere.deliver):
            await _wait_until_ready(broker)
            async with asyncio.timeout(scaled(DELIVERY_WITHIN)):
                await broker.publish(_message(topic, "unheard"))
        assert elsewhere.messages == []

    async def test_messages_on_other_topics_reach_every_server_too(
        self, broker: Broker, topic: Topic
    ) -> None:
        """The bus carries every topic to every server; choosing subscribers is the hub's job."""
        other = Topic(f"{topic.name}:other")
        on_topic, on_other = Deliveries(topic), Deliveries(other)
        async with broker.attach(on_topic.deliver), broker.attach(on_other.deliver):
            await _wait_until_ready(broker)
            first, second = _message(other, "other"), _message(topic, "this")
            await broker.publish(first)
            await broker.publish(second)
            assert await on_other.wait_for(1) == [first]
            assert await on_topic.wait_for(1) == [second]


class TestMemoryBroker(BrokerContract):
    """The in-process broker keeps the Broker contract, plus what only it promises."""

    @pytest.fixture
    def broker(self) -> MemoryBroker:
        return MemoryBroker()

    async def test_delivery_is_done_when_publish_returns(self, broker: MemoryBroker, topic: Topic) -> None:
        """The memory bus delivers on the publisher's turn: nothing is pending once publish returns."""
        deliveries = Deliveries(topic)
        async with broker.attach(deliveries.deliver):
            message = _message(topic, "now")
            await broker.publish(message)
            assert deliveries.messages == [message]

    async def test_a_failing_server_does_not_stop_delivery_to_the_others(
        self, broker: MemoryBroker, topic: Topic
    ) -> None:
        """A deliver callback that raises is skipped; the others get the message and publish succeeds."""
        before, after = Deliveries(topic), Deliveries(topic)

        def failing(_message: Message) -> None:
            raise RuntimeError("server bug")

        message = _message(topic, "survives")
        with capture_logs() as logs:
            async with broker.attach(before.deliver), broker.attach(failing), broker.attach(after.deliver):
                await broker.publish(message)
        assert before.messages == [message]
        assert after.messages == [message]
        failures = [entry for entry in logs if entry["event"] == "delivery_failed"]
        assert [entry["message_id"] for entry in failures] == [message.id]
        assert failures[0]["log_level"] == "error"

    def test_is_ready_even_before_anyone_attached(self, broker: MemoryBroker) -> None:
        """There is nothing to connect to, so the memory broker is always ready."""
        assert broker.is_ready()
