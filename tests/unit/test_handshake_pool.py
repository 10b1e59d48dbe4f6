"""The handshake pool: connections counted from accept, bounded in all and per peer, the oldest evicted."""

from __future__ import annotations

from typing import cast

from websockets.asyncio.server import ServerConnection

from minimess.adapters.websocket_server.client_address import parse_networks
from minimess.adapters.websocket_server.handshake_pool import HandshakePool


class AbortedTransport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


class Pending:
    """The parts of an accepted connection the pool uses: its peer and its transport."""

    def __init__(self, peer: str = "10.0.0.1") -> None:
        self.remote_address = (peer, 40000)
        self.transport = AbortedTransport()

    @property
    def evicted(self) -> bool:
        return self.transport.aborted


def enter(pool: HandshakePool, *connections: Pending) -> None:
    for connection in connections:
        pool.enter(cast(ServerConnection, connection))


async def test_a_full_pool_evicts_its_oldest_connection_for_a_new_one() -> None:
    pool = HandshakePool(2)
    first, second, third = Pending("10.0.0.1"), Pending("10.0.0.2"), Pending("10.0.0.3")
    enter(pool, first, second, third)
    assert [first.evicted, second.evicted, third.evicted] == [True, False, False]
    assert len(pool) == 2


async def test_a_connection_that_left_is_not_evicted_nor_counted() -> None:
    pool = HandshakePool(2)
    admitted, idle, new = Pending("10.0.0.1"), Pending("10.0.0.2"), Pending("10.0.0.3")
    enter(pool, admitted, idle)
    pool.leave(cast(ServerConnection, admitted))
    enter(pool, new)
    assert not admitted.evicted
    assert not idle.evicted
    enter(pool, Pending("10.0.0.4"))
    assert idle.evicted
    # Leaving twice (evicted, then closed) is harmless.
    pool.leave(cast(ServerConnection, idle))
    assert len(pool) == 2


async def test_a_peer_past_its_bound_loses_its_own_oldest_and_nobody_elses() -> None:
    pool = HandshakePool(10, per_peer=2)
    other = Pending("10.0.0.9")
    flood = [Pending("10.0.0.1") for _ in range(3)]
    enter(pool, other, *flood)
    assert [connection.evicted for connection in flood] == [True, False, False]
    assert not other.evicted
    assert (pool.pending_from("10.0.0.1"), pool.pending_from("10.0.0.9")) == (2, 1)


async def test_a_trusted_proxy_has_no_per_peer_bound() -> None:
    pool = HandshakePool(10, per_peer=2, trusted_proxies=parse_networks(["10.0.0.0/8"]))
    proxied = [Pending("10.0.0.1") for _ in range(5)]
    enter(pool, *proxied)
    assert not any(connection.evicted for connection in proxied)
    enter(pool, *(Pending("10.0.0.1") for _ in range(6)))
    assert proxied[0].evicted
    assert len(pool) == 10
