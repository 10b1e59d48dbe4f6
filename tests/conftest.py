"""Fixtures shared by tests/integration and tests/contracts: the session's real Kafka."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.integration.kafka_process import KafkaProcess


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaProcess]:
    """One fresh Kafka for the test session, on a free port; tests share it through distinct topics.

    When it cannot start, the tests that need it skip, or fail under MINIMESS_REQUIRE_KAFKA=1 (CI).
    """
    # Imported here: unit test runs need neither Kafka nor its helpers.
    from tests.integration.kafka_process import KafkaProcess, KafkaUnavailable, kafka_unavailable

    process = KafkaProcess(tmp_path_factory.mktemp("kafka"))
    try:
        try:
            process.start()
        except KafkaUnavailable as error:
            kafka_unavailable(str(error))
        yield process
    finally:
        # Also after a failed start: a start that timed out may have left a broker behind.
        process.stop()
