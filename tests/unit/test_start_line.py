"""The start line's address: the URL a client connects to, and where /metrics is."""

from __future__ import annotations

import socket

import pytest

from minimess.adapters.websocket_server.start_line import authority, where


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1:8080"),
        ("chat.example.com", "chat.example.com:8080"),
        ("::1", "[::1]:8080"),
        ("0.0.0.0", f"{socket.gethostname()}:8080"),
        ("::", f"{socket.gethostname()}:8080"),
        ("", f"{socket.gethostname()}:8080"),
    ],
)
def test_the_address_is_written_as_a_client_would_use_it(host: str, expected: str) -> None:
    assert authority(host, 8080) == expected


def test_metrics_are_on_the_admin_port_when_there_is_one() -> None:
    kafka = {"broker": "kafka", "kafka_bootstrap": "k:9092", "kafka_topic": "t"}
    assert where("127.0.0.1", 8080, None, {"broker": "memory"}) == {
        "url": "ws://127.0.0.1:8080/subscribe/id:<uid>/topic:<topic>",
        "broker": "memory",
        "metrics": "http://127.0.0.1:8080/metrics",
    }
    assert where("127.0.0.1", 8080, 9100, kafka) == {
        "url": "ws://127.0.0.1:8080/subscribe/id:<uid>/topic:<topic>",
        **kafka,
        "metrics": "http://127.0.0.1:9100/metrics",
    }
