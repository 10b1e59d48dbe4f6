"""The Broker contract on KafkaBroker with a real Kafka (its real clients)."""

from __future__ import annotations

import uuid

import pytest

from minimess.adapters.kafka.broker import KafkaBroker
from minimess.adapters.kafka.settings import KafkaSettings
from tests.contracts.broker_contract import BrokerContract
from tests.integration.kafka_process import KafkaProcess

pytestmark = pytest.mark.integration

PARTITIONS = 3
PUBLISH_TIMEOUT = 5.0


class TestKafkaBroker(BrokerContract):
    """KafkaBroker keeps the contract the memory broker keeps, each test on a Kafka topic of its own."""

    @pytest.fixture
    def broker(self, kafka: KafkaProcess) -> KafkaBroker:
        settings = KafkaSettings(
            kafka_bootstrap=kafka.bootstrap,
            kafka_topic=f"minimess-test-{uuid.uuid4().hex}",
            kafka_partitions=PARTITIONS,
            publish_timeout=PUBLISH_TIMEOUT,
        )
        return KafkaBroker(settings, node_id="contract")
