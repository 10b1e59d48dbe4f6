"""Connection caps: fitted under the file limit, counted from admission until the TCP connection closes."""

from __future__ import annotations

import asyncio
import resource
from typing import cast

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request

from minimess.adapters.websocket_server.client_address import parse_networks
from minimess.adapters.websocket_server.connection_caps import (
    ACCEPT_BACKLOG,
    FILE_RESERVE,
    ConnectionCaps,
    ConnectionSlots,
    fit_caps,
)
from tests.unit.fakes import HandshakeConnection


def test_the_default_cap_leaves_the_reserve_and_the_handshake_pool_of_the_file_limit() -> None:
    caps = fit_caps(0, 0, 1024)
    room = 1024 - FILE_RESERVE
    assert caps.max_handshakes == room // 8
    assert caps.max_connections == room - caps.max_handshakes
    assert not caps.lowered


def test_a_cap_that_fits_is_kept() -> None:
    caps = fit_caps(100, 5, 1024)
    assert (caps.max_connections, caps.max_connections_per_ip, caps.lowered) == (100, 5, False)


def test_a_cap_past_the_file_limit_is_lowered_to_keep_the_reserve_and_the_pool() -> None:
    caps = fit_caps(1000, 0, 300)
    assert caps.max_connections + caps.max_handshakes == 300 - FILE_RESERVE
    assert caps.lowered


def test_the_handshake_pool_outlasts_two_wakeups_of_accepts_and_stays_bounded() -> None:
    assert fit_caps(0, 0, 1024).max_handshakes >= 2 * ACCEPT_BACKLOG
    assert fit_caps(0, 0, 1 << 20).max_handshakes == 1024
    caps = fit_caps(0, 0, 1 << 20, handshakes=10)
    assert (caps.max_handshakes, caps.max_connections) == (10, (1 << 20) - FILE_RESERVE - 10)


def test_a_tiny_file_limit_still_allows_one_connection_and_one_handshake() -> None:
    caps = fit_caps(0, 0, FILE_RESERVE // 2)
    assert (caps.max_connections, caps.max_handshakes) == (1, 1)


def test_an_unlimited_file_limit_does_not_count_as_negative() -> None:
    assert fit_caps(0, 0, resource.RLIM_INFINITY).max_connections > 1000


def caps(total: int, per_ip: int = 0) -> ConnectionCaps:
    return ConnectionCaps(total, per_ip, total, 1 << 20, 64)


def admit(slots: ConnectionSlots, connection: HandshakeConnection, forwarded_for: str | None = None) -> int:
    """The status of the answer (0: admitted)."""
    headers = Headers() if forwarded_for is None else Headers([("X-Forwarded-For", forwarded_for)])
    response = slots.admit(cast(ServerConnection, connection), Request("/subscribe/id:a", headers))
    return 0 if response is None else response.status_code


async def settled() -> None:
    """Let the callbacks of futures resolved just now run."""
    await asyncio.sleep(0)


async def test_past_the_global_cap_a_connection_gets_503_until_one_closes() -> None:
    slots = ConnectionSlots(caps(2))
    first, second, third = HandshakeConnection(), HandshakeConnection("10.0.0.2"), HandshakeConnection()
    assert [admit(slots, first), admit(slots, second), admit(slots, third)] == [0, 0, 503]
    assert slots.open == 2
    first.lose()
    await settled()
    assert slots.open == 1
    assert admit(slots, third) == 0


async def test_a_refused_connection_takes_no_slot() -> None:
    slots = ConnectionSlots(caps(1))
    assert admit(slots, HandshakeConnection()) == 0
    refused = HandshakeConnection()
    assert admit(slots, refused) == 503
    refused.lose()
    await settled()
    assert slots.open == 1


async def test_past_the_cap_per_address_a_connection_gets_429_and_other_addresses_connect() -> None:
    slots = ConnectionSlots(caps(10, per_ip=2))
    held = [HandshakeConnection("198.51.100.1") for _ in range(2)]
    assert [admit(slots, connection) for connection in held] == [0, 0]
    assert admit(slots, HandshakeConnection("198.51.100.1")) == 429
    assert admit(slots, HandshakeConnection("198.51.100.2")) == 0
    held[0].lose()
    await settled()
    assert slots.open_from("198.51.100.1") == 1
    assert admit(slots, HandshakeConnection("198.51.100.1")) == 0


async def test_behind_a_trusted_proxy_the_forwarded_address_is_counted() -> None:
    slots = ConnectionSlots(caps(10, per_ip=1), parse_networks(["127.0.0.1"]))
    assert admit(slots, HandshakeConnection(), "203.0.113.1") == 0
    assert admit(slots, HandshakeConnection(), "203.0.113.1") == 429
    assert admit(slots, HandshakeConnection(), "203.0.113.2") == 0
    # Not from the trusted proxy: the header is the client's word, and the peer is counted.
    assert admit(slots, HandshakeConnection("192.0.2.7"), "203.0.113.3") == 0
    assert admit(slots, HandshakeConnection("192.0.2.7"), "203.0.113.4") == 429
