"""The Broker contract on the in-process broker, and what only that broker promises."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from minimess.adapters.memory import MemoryBroker
from minimess.domain.model import Message, Topic
from tests.contracts.broker_contract import BrokerContract, Deliveries, new_message


class TestMemoryBroker(BrokerContract):
    """The in-process broker keeps the Broker contract, plus what only it promises."""

    @pytest.fixture
    def broker(self) -> MemoryBroker:
        return MemoryBroker()

    async def test_delivery_is_done_when_publish_returns(self, broker: MemoryBroker, topic: Topic) -> None:
        """The memory bus delivers on the publisher's turn: nothing is pending once publish returns."""
        deliveries = Deliveries(topic)
        async with broker.receiving(deliveries.deliver):
            message = new_message(topic, "now")
            await broker.publish(message)
            assert deliveries.messages == [message]

    async def test_a_failing_server_does_not_stop_delivery_to_the_others(
        self, broker: MemoryBroker, topic: Topic
    ) -> None:
        """A deliver callback that raises is skipped; the others get the message and publish succeeds."""
        before, after = Deliveries(topic), Deliveries(topic)

        def failing(_message: Message) -> None:
            raise RuntimeError("server bug")

        message = new_message(topic, "survives")
        with capture_logs() as logs:
            async with (
                broker.receiving(before.deliver),
                broker.receiving(failing),
                broker.receiving(after.deliver),
            ):
                await broker.publish(message)
        assert before.messages == [message]
        assert after.messages == [message]
        failures = [entry for entry in logs if entry["event"] == "delivery_failed"]
        assert [entry["message_id"] for entry in failures] == [message.id]
        assert failures[0]["log_level"] == "error"

    def test_is_ready_even_before_anyone_receives(self, broker: MemoryBroker) -> None:
        """There is nothing to connect to, so the memory broker is always ready."""
        assert broker.is_ready()
