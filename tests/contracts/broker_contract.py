"""The behaviour every Broker must have, written once; tests/contracts runs it on each broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Protocol

import pytest

from minimess.domain.model import Message, Topic, Uid
from minimess.domain.ports import Broker, BusHealth
from tests.timeouts import scaled


class Bus(Broker, BusHealth, Protocol):
    """A broker as a server uses it: the bus, and what the bus says of its health."""


DELIVERY_WITHIN = 10.0
"""Seconds (before scaling) a published message may take to reach every receiving server."""


class Deliveries:
    """One receiving server's deliver callback: records the messages on one topic, in bus order."""

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


def new_message(topic: Topic, body: str) -> Message:
    return Message.create(topic, Uid("contract"), body, datetime.now(UTC))


async def _wait_until_ready(broker: Bus, within: float = DELIVERY_WITHIN) -> None:
    deadline = time.monotonic() + scaled(within)
    while not broker.is_ready():
        assert time.monotonic() < deadline, f"broker not ready within {scaled(within)} s"
        await asyncio.sleep(0.01)


class BrokerContract:
    """Behaviour tests for any Broker; a subclass provides the `broker` fixture.

    Each broker's module in tests/contracts subclasses BrokerContract with a `broker` fixture (an
    async generator fixture if the broker needs starting). The tests wait for deliveries with a
    timeout instead of assuming they happen during `publish`, use a topic of their own, and ignore
    other topics, so they hold for a bus shared between tests.
    """

    @pytest.fixture
    def topic(self) -> Topic:
        """A topic no other test (or earlier run on a shared bus) publishes on."""
        return Topic(f"contract:{uuid.uuid4().hex}")

    async def test_every_receiving_server_gets_a_publishednew_message(
        self, broker: Bus, topic: Topic
    ) -> None:
        """With two servers receiving, one publish reaches both deliver callbacks, exactly once each."""
        first, second = Deliveries(topic), Deliveries(topic)
        async with broker.receiving(first.deliver), broker.receiving(second.deliver):
            await _wait_until_ready(broker)
            message = new_message(topic, "hello")
            await broker.publish(message)
            assert await first.wait_for(1) == [message]
            assert await second.wait_for(1) == [message]
            # A duplicate would arrive with later messages: publish a marker and look again.
            marker = new_message(topic, "marker")
            await broker.publish(marker)
            assert await first.wait_for(2) == [message, marker]
            assert await second.wait_for(2) == [message, marker]
        assert first.messages == [message, marker]
        assert second.messages == [message, marker]

    async def test_messages_published_before_receiving_began_are_not_delivered(
        self, broker: Bus, topic: Topic
    ) -> None:
        """A server that begins receiving after a publish never gets it, only what is published later."""
        witness = Deliveries(topic)
        async with broker.receiving(witness.deliver):
            await _wait_until_ready(broker)
            before = new_message(topic, "before")
            await broker.publish(before)
            # Once the witness has it, the bus has it: a later reader must not see it.
            await witness.wait_for(1)
            late = Deliveries(topic)
            async with broker.receiving(late.deliver):
                after = new_message(topic, "after")
                await broker.publish(after)
                assert await late.wait_for(1) == [after]
                assert await witness.wait_for(2) == [before, after]
            assert late.messages == [after]

    async def test_every_receiving_server_sees_the_publish_order(self, broker: Bus, topic: Topic) -> None:
        """Messages published one after another reach every receiving server in that order."""
        first, second = Deliveries(topic), Deliveries(topic)
        async with broker.receiving(first.deliver), broker.receiving(second.deliver):
            await _wait_until_ready(broker)
            published = [new_message(topic, f"m{i}") for i in range(50)]
            for message in published:
                await broker.publish(message)
            assert await first.wait_for(len(published)) == published
            assert await second.wait_for(len(published)) == published

    async def test_messages_handed_over_without_waiting_for_answers_keep_their_order(
        self, broker: Bus, topic: Topic
    ) -> None:
        """Handed over one after another, answers awaited only at the end: the bus keeps the hand-over
        order, and each answer is its message's position, increasing in that order."""
        first, second = Deliveries(topic), Deliveries(topic)
        async with broker.receiving(first.deliver), broker.receiving(second.deliver):
            await _wait_until_ready(broker)
            published = [new_message(topic, f"m{i}") for i in range(50)]
            acknowledgements = [await broker.hand_over(message) for message in published]
            async with asyncio.timeout(scaled(DELIVERY_WITHIN)):
                positions = [await acknowledgement for acknowledgement in acknowledgements]
            offsets = [position.offset for position in positions]
            assert offsets == sorted(offsets)
            assert len(set(offsets)) == len(offsets)
            assert len({position.epoch for position in positions}) == 1
            in_first = await first.wait_for(len(published))
            assert in_first == published
            assert [message.position for message in in_first] == positions
            assert await second.wait_for(len(published)) == published

    async def test_concurrent_publishes_reach_every_server_in_one_order(
        self, broker: Bus, topic: Topic
    ) -> None:
        """Publishes in flight together may be ordered either way, but the same way for everybody."""
        first, second = Deliveries(topic), Deliveries(topic)
        async with broker.receiving(first.deliver), broker.receiving(second.deliver):
            await _wait_until_ready(broker)
            published = [new_message(topic, f"m{i}") for i in range(20)]
            await asyncio.gather(*(broker.publish(message) for message in published))
            in_first = await first.wait_for(len(published))
            assert sorted(m.body for m in in_first) == sorted(m.body for m in published)
            assert await second.wait_for(len(published)) == in_first

    async def test_nothing_is_delivered_after_the_receiving_context_exits(
        self, broker: Bus, topic: Topic
    ) -> None:
        """A server that stopped receiving gets nothing more, while the others still do."""
        staying, leaving = Deliveries(topic), Deliveries(topic)
        async with broker.receiving(staying.deliver):
            async with broker.receiving(leaving.deliver):
                await _wait_until_ready(broker)
                first = new_message(topic, "first")
                await broker.publish(first)
                assert await leaving.wait_for(1) == [first]
            second = new_message(topic, "second")
            await broker.publish(second)
            # When the server still receiving has `second`, the other would have had it too.
            assert await staying.wait_for(2) == [first, second]
        assert leaving.messages == [first]

    async def test_is_ready_while_receiving_and_usable(self, broker: Bus, topic: Topic) -> None:
        """Once receiving from a reachable bus the broker says it is ready, and a publish goes through."""
        deliveries = Deliveries(topic)
        async with broker.receiving(deliveries.deliver):
            await _wait_until_ready(broker)
            assert broker.is_ready()
            message = new_message(topic, "ready")
            await broker.publish(message)
            assert await deliveries.wait_for(1) == [message]

    async def test_publish_returns_once_the_bus_accepted_thenew_message(
        self, broker: Bus, topic: Topic
    ) -> None:
        """`publish` completes within the deadline, and what it accepted is then delivered."""
        deliveries = Deliveries(topic)
        async with broker.receiving(deliveries.deliver):
            await _wait_until_ready(broker)
            message = new_message(topic, "accepted")
            async with asyncio.timeout(scaled(DELIVERY_WITHIN)):
                await broker.publish(message)
            assert await deliveries.wait_for(1) == [message]

    async def test_publish_on_a_topic_nobody_wants_is_accepted(self, broker: Bus, topic: Topic) -> None:
        """The bus accepts a message no server has a subscriber for: publish neither raises nor hangs."""
        elsewhere = Deliveries(Topic(f"{topic.name}:elsewhere"))
        async with broker.receiving(elsewhere.deliver):
            await _wait_until_ready(broker)
            async with asyncio.timeout(scaled(DELIVERY_WITHIN)):
                await broker.publish(new_message(topic, "unheard"))
        assert elsewhere.messages == []

    async def test_messages_on_other_topics_reach_every_server_too(self, broker: Bus, topic: Topic) -> None:
        """The bus carries every topic to every server; choosing subscribers is the hub's job."""
        other = Topic(f"{topic.name}:other")
        on_topic, on_other = Deliveries(topic), Deliveries(other)
        async with broker.receiving(on_topic.deliver), broker.receiving(on_other.deliver):
            await _wait_until_ready(broker)
            first, second = new_message(other, "other"), new_message(topic, "this")
            await broker.publish(first)
            await broker.publish(second)
            assert await on_other.wait_for(1) == [first]
            assert await on_topic.wait_for(1) == [second]

    async def test_publish_returns_the_position_every_receiving_server_sees(
        self, broker: Bus, topic: Topic
    ) -> None:
        """One epoch per topic; offsets increase in bus order; the publisher's answer is the delivered one."""
        first, second = Deliveries(topic), Deliveries(topic)
        async with broker.receiving(first.deliver), broker.receiving(second.deliver):
            await _wait_until_ready(broker)
            positions = [await broker.publish(new_message(topic, f"m{i}")) for i in range(5)]
            delivered = [await deliveries.wait_for(5) for deliveries in (first, second)]
        assert [m.position for m in delivered[0]] == [m.position for m in delivered[1]] == positions
        assert len({position.epoch for position in positions}) == 1
        offsets = [position.offset for position in positions]
        assert offsets == sorted(set(offsets))

    async def test_the_log_state_follows_what_was_received_and_caught_up_waits_for_nothing_past_it(
        self, broker: Bus, topic: Topic
    ) -> None:
        """`log` names the epoch and the last offset received; a received offset is caught up at once,
        one beyond the bus's end is refused at once rather than waited for."""
        witness = Deliveries(topic)
        async with broker.receiving(witness.deliver):
            await _wait_until_ready(broker)
            position = await broker.publish(new_message(topic, "m"))
            await witness.wait_for(1)
            log = broker.log(topic)
            assert log is not None
            assert (log.epoch, log.last) == (position.epoch, position.offset)
            assert log.first <= position.offset
            async with asyncio.timeout(scaled(DELIVERY_WITHIN)):
                assert await broker.caught_up(topic, position.offset)
                assert not await broker.caught_up(topic, position.offset + 1000)
