"""The ranges of a server's settings: the edge values they accept and the values they refuse."""

from __future__ import annotations

import math
from typing import Any

import pytest

from minimess.adapters.websocket_server.settings import WebSocketSettings
from minimess.app.settings import MessagingSettings
from minimess.bootstrap.settings import ServeSettings
from minimess.entrypoints.log_settings import LogSettings


@pytest.mark.parametrize(
    ("group", "changes"),
    [
        (WebSocketSettings, {"port": 0}),
        (WebSocketSettings, {"port": 65535}),
        (WebSocketSettings, {"ping_interval": 0}),
        (WebSocketSettings, {"ping_timeout": 0.001, "close_timeout": 0.001, "shutdown_timeout": 0.001}),
        (WebSocketSettings, {"max_message_bytes": 128, "queue_size": 1, "rate_limit": 0}),
        (MessagingSettings, {"tick": 0, "max_topics": 1}),
    ],
)
def test_edge_values_are_accepted(group: type, changes: dict[str, Any]) -> None:
    """0 is allowed where it means "off" or "any free port"."""
    settings = group(**changes)
    assert {name: getattr(settings, name) for name in changes} == changes


@pytest.mark.parametrize(
    ("group", "name", "value"),
    [
        (WebSocketSettings, "port", -1),
        (WebSocketSettings, "port", 65536),
        (WebSocketSettings, "ping_interval", -0.5),
        (WebSocketSettings, "ping_timeout", 0),
        (WebSocketSettings, "close_timeout", 0),
        (WebSocketSettings, "max_message_bytes", 127),
        (WebSocketSettings, "queue_size", 0),
        (WebSocketSettings, "rate_limit", -1),
        (WebSocketSettings, "shutdown_timeout", 0),
        (MessagingSettings, "tick", -1),
        (MessagingSettings, "tick", math.nan),
        (MessagingSettings, "max_topics", 0),
        (ServeSettings, "broker", "carrier-pigeon"),
        (LogSettings, "log_level", "trace"),
        (LogSettings, "log_format", "xml"),
    ],
)
def test_a_value_out_of_range_is_refused_naming_the_setting(group: type, name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        group(**{name: value})
