"""What `minimess serve` is told: its settings, grouped by the part that uses them, and the buses it offers.

Light on purpose: every command line derives its options from these, `--help` and `--version` too.
"""

from __future__ import annotations

import os

import attrs

from minimess.adapters.kafka.settings import KafkaSettings
from minimess.adapters.websocket_server.settings import WebSocketSettings
from minimess.app.settings import MessagingSettings

BROKERS: tuple[str, ...] = ("memory", "kafka")
"""The buses a server can run on: the keys of the server container's broker selector."""


LOOPS: tuple[str, ...] = ("auto", "asyncio", "uvloop")
"""The event loops a server can run on; auto is uvloop where it is installed, else asyncio's own."""


def _check_broker(kind: str) -> None:
    if kind not in BROKERS:
        raise ValueError(f"unknown broker {kind!r}; expected one of {', '.join(BROKERS)}")


def _check_workers(value: str) -> None:
    if value != "auto" and not (value.isascii() and value.isdigit() and 1 <= int(value) <= 1024):
        raise ValueError(f"--workers must be auto or a whole number from 1 to 1024, got {value!r}")


@attrs.frozen(kw_only=True)
class ServeSettings:
    """Everything `minimess serve` is told, grouped by the part that uses it."""

    broker: str = attrs.field(
        default="memory",
        validator=lambda _settings, _attribute, kind: _check_broker(kind),
        metadata={"help": "The bus between servers.", "choices": BROKERS},
    )
    trace: bool = attrs.field(
        default=False,
        metadata={
            "help": "Stamp messages with stage times for a latency breakdown (minimess bench --trace);"
            " costs CPU, for measuring only."
        },
    )
    server: WebSocketSettings = attrs.field(factory=WebSocketSettings)
    messaging: MessagingSettings = attrs.field(factory=MessagingSettings)
    kafka: KafkaSettings = attrs.field(factory=KafkaSettings)
    loop: str = attrs.field(
        default="auto",
        validator=attrs.validators.in_(LOOPS),
        metadata={
            "help": "The event loop: uvloop (pip install 'minimess[uvloop]'), asyncio's own, or auto"
            " (uvloop where it is installed).",
            "choices": LOOPS,
        },
    )
    workers: str = attrs.field(
        default="1",
        validator=lambda _settings, _attribute, value: _check_workers(value),
        metadata={
            "help": "Server processes serving the one port (SO_REUSEPORT), started and restarted by a"
            " supervisor; auto: one per CPU this process may run on. 1: one process, no supervisor.",
        },
    )

    @property
    def worker_count(self) -> int:
        """How many worker processes --workers asks for: auto is the CPUs this process may run on."""
        return len(os.sched_getaffinity(0)) if self.workers == "auto" else int(self.workers)

    @property
    def bus_summary(self) -> dict[str, str]:
        """What the start line says of the bus: its kind, and for Kafka its address and topic."""
        if self.broker == "kafka":
            return {
                "broker": "kafka",
                "kafka_bootstrap": self.kafka.kafka_bootstrap,
                "kafka_topic": self.kafka.kafka_topic,
            }
        return {"broker": self.broker}
