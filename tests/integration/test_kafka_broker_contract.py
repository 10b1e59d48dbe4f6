"""The Broker contract, run against KafkaBroker on a real Kafka."""

from __future__ import annotations

import uuid

import pytest

from minimess.adapters.kafka.broker import KafkaBroker
from tests.integration.kafka_process import KafkaProcess
from tests.unit.test_broker_contract import BrokerContract

pytestmark = pytest.mark.integration

PARTITIONS = 3
PUBLISH_TIMEOUT = 5.0


class TestKafkaBroker(BrokerContract):
    """KafkaBroker keeps the contract the memory broker keeps, each test on a Kafka topic of its own."""

    @pytest.fixture
    def broker(self, kafka: KafkaProcess) -> KafkaBroker:
        return KafkaBroker(
            bootstrap=kafka.bootstrap,
            topic=f"minimess-test-{uuid.uuid4().hex}",
            partitions=PARTITIONS,
            publish_timeout=PUBLISH_TIMEOUT,
            node_id="contract",
        )
