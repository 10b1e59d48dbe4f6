"""What every test run shares: hypothesis's settings, the session's real Kafka, failures kept."""

from __future__ import annotations

import contextlib
import datetime
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from tests.integration.kafka_process import KafkaProcess

# Property tests check what the code does, never how fast: hypothesis's default deadline (200 ms an
# example) and its check of slow data generation fail them on a loaded machine, which is timing
# luck. Loaded here, before any test module's @settings is read, so every test inherits it.
settings.register_profile("minimess", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("minimess")

# Every failed test's report is appended here as well as printed: a run in a clone that is deleted
# afterwards (CI) still leaves what failed on the machine.
FAILURES = Path(
    os.environ.get("MINIMESS_TEST_FAILURES", Path(tempfile.gettempdir()) / "minimess-test-failures.log")
)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Under pytest-xdist the controller sees every worker's reports: only it writes.
    if report.failed and "PYTEST_XDIST_WORKER" not in os.environ:
        when = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        # Kept only where it can be: a file that cannot be written must not end the run.
        with contextlib.suppress(OSError), FAILURES.open("a", encoding="utf-8") as failures:
            failures.write(f"==== {when} {report.nodeid} ({report.when})\n{report.longreprtext}\n")


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
