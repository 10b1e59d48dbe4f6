"""--workers: what it asks for, and how a worker's role changes its settings and its object graph."""

from __future__ import annotations

import os
from pathlib import Path

import attrs
import pytest

from minimess.adapters.kafka.broker import KafkaBroker
from minimess.adapters.local_channel.broker import ChannelBroker
from minimess.adapters.local_channel.frames import MAX_FRAME
from minimess.adapters.websocket_server.settings import WebSocketSettings
from minimess.bootstrap.server import build_container
from minimess.bootstrap.settings import ServeSettings
from minimess.bootstrap.worker import (
    CHANNEL_FRAME_OVERHEAD,
    WorkerRole,
    checked_admin_port,
    checked_message_size,
)


def test_workers_auto_is_the_cpus_this_process_may_run_on() -> None:
    assert ServeSettings(workers="auto").worker_count == len(os.sched_getaffinity(0))
    assert ServeSettings().worker_count == 1
    assert ServeSettings(workers="3").worker_count == 3


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "", "١٢", "1025"])
def test_workers_refuses_what_is_neither_auto_nor_a_count(value: str) -> None:
    with pytest.raises(ValueError, match="--workers"):
        ServeSettings(workers=value)


def test_a_role_survives_the_environment() -> None:
    role = WorkerRole(3, 8080, Path("/run/channel.sock"))
    assert WorkerRole.from_environment(role.environment()) == role
    assert WorkerRole.from_environment({}) is None


def test_a_worker_is_named_for_its_index_and_takes_the_admin_port_plus_its_index() -> None:
    settings = ServeSettings(server=WebSocketSettings(port=0, node_id="edge", admin_port=9100))
    worker = WorkerRole(2, 8080, None).settings(settings)
    assert (worker.server.port, worker.server.node_name, worker.server.admin_port) == (8080, "edge-2", 9102)
    unnamed = WorkerRole(1, 8080, None).settings(ServeSettings())
    assert unnamed.server.node_name.endswith(":8080-1")
    any_admin_port = ServeSettings(server=WebSocketSettings(admin_port=0))
    assert WorkerRole(1, 8080, None).settings(any_admin_port).server.admin_port == 0


def test_admin_ports_past_the_last_port_are_refused() -> None:
    settings = ServeSettings(server=WebSocketSettings(admin_port=65535))
    assert checked_admin_port(settings, 1) is None
    assert checked_admin_port(settings, 2) is not None


def test_messages_larger_than_the_local_channel_carries_are_refused_with_workers_on_memory() -> None:
    fits = ServeSettings(server=WebSocketSettings(max_message_bytes=MAX_FRAME - CHANNEL_FRAME_OVERHEAD))
    assert checked_message_size(fits, 2) is None
    larger = ServeSettings(server=WebSocketSettings(max_message_bytes=MAX_FRAME))
    assert checked_message_size(larger, 1) is None
    assert checked_message_size(attrs.evolve(larger, broker="kafka"), 2) is None
    refusal = checked_message_size(larger, 2)
    assert refusal is not None
    assert "--max-message-bytes" in refusal


def test_a_worker_on_the_memory_bus_is_on_the_local_channel_and_shares_its_port(tmp_path: Path) -> None:
    container = build_container(ServeSettings(), WorkerRole(0, 8080, tmp_path / "channel.sock"))
    assert isinstance(container.broker(), ChannelBroker)
    assert container.server().reuse_port


def test_a_worker_on_kafka_is_a_bus_member_named_for_its_index() -> None:
    settings = ServeSettings(broker="kafka", server=WebSocketSettings(node_id="k"))
    container = build_container(settings, WorkerRole(1, 8080, None))
    broker = container.broker()
    assert isinstance(broker, KafkaBroker)
    assert container.settings().server.node_name == "k-1"


def test_a_process_an_operator_started_is_built_as_before() -> None:
    container = build_container(ServeSettings())
    assert not isinstance(container.broker(), ChannelBroker)
    assert not container.server().reuse_port
