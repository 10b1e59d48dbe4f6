"""ServerSettings: the defaults of design §7 and the ranges every setting must stay in."""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest

from minimess.app.settings import ServerSettings


def test_defaults_are_the_documented_ones() -> None:
    """A server with no options listens on 127.0.0.1:8080 with the memory broker and §7's limits."""
    settings = ServerSettings()
    assert (settings.host, settings.port, settings.broker) == ("127.0.0.1", 8080, "memory")
    assert settings.tick == 5
    assert (settings.ping_interval, settings.ping_timeout) == (20, 20)
    assert settings.max_message_bytes == 65536
    assert settings.queue_size == 1024
    assert settings.shutdown_timeout == 10
    assert settings.node_id is None
    assert settings.trace is False


@pytest.mark.parametrize(
    "changes",
    [
        {"port": 0},
        {"port": 65535},
        {"tick": 0},
        {"ping_interval": 0},
        {"ping_timeout": 0.001},
        {"close_timeout": 0.001},
        {"max_message_bytes": 128},
        {"queue_size": 1},
        {"max_topics": 1},
        {"rate_limit": 0},
        {"shutdown_timeout": 0.001},
        {"host": "0.0.0.0", "node_id": "eu-1"},
        {"trace": True},
    ],
)
def test_boundary_values_are_accepted(changes: dict[str, Any]) -> None:
    """The smallest and largest allowed values (0 meaning "off" where documented) are valid."""
    settings = ServerSettings(**changes)
    assert {name: getattr(settings, name) for name in changes} == changes


@pytest.mark.parametrize(
    "changes",
    [
        {"port": -1},
        {"port": 65536},
        {"tick": -1},
        {"tick": math.nan},
        {"ping_interval": -0.5},
        {"ping_timeout": 0},
        {"close_timeout": 0},
        {"max_message_bytes": 127},
        {"queue_size": 0},
        {"max_topics": 0},
        {"rate_limit": -1},
        {"shutdown_timeout": 0},
        {"shutdown_timeout": -10},
    ],
)
def test_out_of_range_values_are_rejected(changes: dict[str, Any]) -> None:
    """A value outside its documented range raises ValueError naming the setting."""
    (name,) = changes
    with pytest.raises(ValueError, match=name):
        ServerSettings(**changes)


def test_an_unknown_broker_kind_is_rejected() -> None:
    """Only a known broker kind (settings.BROKER_KINDS) is valid; another fails when settings are built."""
    with pytest.raises(ValueError, match="broker"):
        ServerSettings(broker="carrier-pigeon")


def test_settings_are_frozen_and_keyword_only() -> None:
    """Settings cannot change after start-up, and positional arguments are not accepted."""
    settings = ServerSettings()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        ServerSettings("127.0.0.1")  # type: ignore[call-arg]
