"""What a reader of the Kafka bus logs about its link to Kafka: a line when it is lost and when it is back.

Not a line per failed attempt: with Kafka gone, the clients are retried and the probe fails every
second, and a line each time would bury everything else. The first failure says `kafka_unavailable`;
later ones are counted, and said again at most once a reminder interval (`kafka_still_unavailable`);
the link back says how long it was down and after how many attempts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

from minimess.adapters.kafka.settings import KafkaSettings

# Seconds between two reminders that Kafka is still unavailable.
REMINDER_INTERVAL = 60.0


class OutageLog:
    """The state of one reader's link to Kafka as its log tells it; only the event loop calls it."""

    def __init__(
        self,
        settings: KafkaSettings,
        clock: Callable[[], float] = time.monotonic,
        reminder_interval: float = REMINDER_INTERVAL,
        logger: Any = None,
    ) -> None:
        self._where = {"bootstrap": settings.kafka_bootstrap, "topic": settings.kafka_topic}
        self._clock = clock
        self._reminder_interval = reminder_interval
        self._log = structlog.get_logger(__name__) if logger is None else logger
        # Since when Kafka has been unavailable (None: it is not), the failed attempts since, and
        # when the last line about it was written.
        self._down_since: float | None = None
        self._attempts = 0
        self._said_at = 0.0

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def failed(self, error: BaseException) -> None:
        """An attempt to reach Kafka failed: starting the clients, or a probe."""
        now = self._clock()
        if self._down_since is None:
            self._down_since = self._said_at = now
            self._attempts = 1
            self._log.warning("kafka_unavailable", **self._where, error=repr(error))
            return
        self._attempts += 1
        if now - self._said_at >= self._reminder_interval:
            self._said_at = now
            self._log.warning(
                "kafka_still_unavailable", **self._where, error=repr(error), **self._outage(now)
            )

    def connected(self) -> None:
        """The clients started: said every time, with the outage that ended, if any."""
        now = self._clock()
        outage = self._outage(now) if self._down_since is not None else {}
        self._down_since = None
        self._log.info("kafka_connected", **self._where, **outage)

    def reachable(self) -> None:
        """A probe reached Kafka: said only if the ones before had not."""
        if self._down_since is None:
            return
        outage = self._outage(self._clock())
        self._down_since = None
        self._log.info("kafka_reachable_again", **self._where, **outage)

    def _outage(self, now: float) -> dict[str, Any]:
        assert self._down_since is not None
        return {"down_seconds": round(now - self._down_since, 1), "attempts": self._attempts}
