"""Faults injected into a running cluster, each one waited out until the cluster serves again."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Mapping
from typing import Final

import attrs

from benchmarks.history.records import Fault
from benchmarks.history.workload import Workload
from tests.integration.kafka_process import KafkaProcess
from tests.integration.server_process import ServerProcess, wait_status

SERVER_FAULTS: Final = ("sigkill", "sigterm")
KAFKA_FAULTS: Final = ("kafka-pause", "kafka-restart")
FAULTS: Final = SERVER_FAULTS + KAFKA_FAULTS


@attrs.frozen
class Cluster:
    """The processes faults strike: servers by node id, and Kafka when the bus is Kafka."""

    servers: Mapping[str, ServerProcess]
    kafka: KafkaProcess | None = None


async def inject(name: str, cluster: Cluster, workload: Workload, within: float, hold: float = 0.0) -> None:
    """Inject the fault `name` and return once the cluster serves again.

    A server fault strikes the server with the most clients: SIGKILL or SIGTERM, then (with other
    servers) until its clients are back on those, then it starts again on its port. A Kafka fault
    pauses (SIGSTOP) or stops Kafka until a publish has failed for it and `hold` seconds have passed,
    then resumes or starts it again. `within` bounds every wait.
    """
    if name in SERVER_FAULTS:
        await _server_fault(name, cluster, workload, within)
    elif name in KAFKA_FAULTS:
        await _kafka_fault(name, cluster, workload, within, hold)
    else:
        raise ValueError(f"unknown fault {name!r}; expected one of {FAULTS}")


async def _server_fault(name: str, cluster: Cluster, workload: Workload, within: float) -> None:
    node = max(cluster.servers, key=lambda n: len(workload.on(n)))
    server = cluster.servers[node]
    displaced = workload.on(node)
    workload.recorder.add(Fault("", time.monotonic(), name, node))
    server.signal(signal.SIGKILL if name == "sigkill" else signal.SIGTERM)
    await asyncio.to_thread(server.wait, within)
    if len(cluster.servers) > 1:
        await workload.until(
            lambda: all(client.ready and client.node != node for client in displaced),
            within,
            lambda: f"clients of {node} not back elsewhere: {[c.name for c in displaced if c.node is None]}",
        )
    await asyncio.to_thread(server.start, server.port)
    await asyncio.to_thread(wait_status, server, "/readyz", 200, within)
    workload.recorder.add(Fault("", time.monotonic(), "restarted", node))


async def _kafka_fault(name: str, cluster: Cluster, workload: Workload, within: float, hold: float) -> None:
    kafka = cluster.kafka
    if kafka is None:
        raise ValueError(f"{name} needs a cluster on Kafka")
    started = time.monotonic()
    workload.recorder.add(Fault("", started, name, "kafka"))
    await asyncio.to_thread(kafka.pause if name == "kafka-pause" else kafka.stop)
    await workload.until(
        lambda: workload.recorder.last_error > started, within, lambda: f"no publish failed during {name}"
    )
    if hold > 0:
        await asyncio.sleep(hold)  # the fault's length, a setting of the scenario
    await asyncio.to_thread(kafka.resume if name == "kafka-pause" else kafka.start)
    for server in cluster.servers.values():
        await asyncio.to_thread(wait_status, server, "/readyz", 200, within)
    workload.recorder.add(Fault("", time.monotonic(), "kafka-back", "kafka"))
