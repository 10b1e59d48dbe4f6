"""Connections on their way in: the listen queue, and accepted ones not admitted yet, oldest evicted."""

from __future__ import annotations

import asyncio
from typing import Final

from websockets.asyncio.server import Server, ServerConnection

from minimess.adapters.websocket_server.client_address import Network, is_trusted, peer_address
from minimess.adapters.websocket_server.log_throttle import ThrottledEvent

# Connections the kernel holds for the server before it accepts them: they cost the process no
# descriptor, and a deep queue absorbs a burst (clients reconnecting together) that a full one
# would answer by dropping SYNs, for a retry a second later. Linux caps it at net.core.somaxconn.
LISTEN_QUEUE: Final = 1024


class HandshakePool:
    """Counts every connection from its accept until it is admitted to a slot or closes.

    Before its request is read a connection cannot be told from an idle one, and no cap on
    admitted connections counts it; so the pool is bounded, in all and per raw peer address, and
    a connection arriving when a bound is reached evicts the oldest connection it counts against.
    A request that is sent at once (a health check, an honest client) is read and answered long
    before it becomes the oldest, while sockets that send nothing are dropped: the descriptors
    the pool stands for stay usable whatever a flood of idle sockets does.

    Peers that are trusted proxies have no per-peer bound: their clients are told apart only by
    the request's headers, which a pending connection has not sent yet.
    """

    def __init__(
        self,
        size: int,
        per_peer: int = 0,
        trusted_proxies: tuple[Network, ...] = (),
        listener: str = "public",
    ) -> None:
        # At most this many pending connections, and this many per peer (0: no per-peer bound).
        self.size = size
        self.per_peer = per_peer
        self._trusted = trusted_proxies
        self._listener = listener
        # Pending connections and their peer, oldest first (dicts keep insertion order).
        self._pending: dict[ServerConnection, str] = {}
        self._by_peer: dict[str, dict[ServerConnection, None]] = {}
        # Evictions come in floods when they come: a line a second, with the count.
        self._evicted = ThrottledEvent("handshake_evicted", level="info")

    def __len__(self) -> int:
        return len(self._pending)

    def pending_from(self, peer: str) -> int:
        return len(self._by_peer.get(peer, ()))

    def enter(self, connection: ServerConnection) -> None:
        """Count a connection just accepted, evicting the oldest one a bound would be exceeded by."""
        peer = peer_address(connection)
        from_peer = self._by_peer.get(peer)
        if (
            self.per_peer
            and from_peer is not None
            and len(from_peer) >= self.per_peer
            and not is_trusted(peer, self._trusted)
        ):
            self._evict(next(iter(from_peer)), f"{self.per_peer} handshakes pending from this address")
        if self._pending and len(self._pending) >= self.size:
            self._evict(next(iter(self._pending)), f"{self.size} handshakes pending")
        self._pending[connection] = peer
        self._by_peer.setdefault(peer, {})[connection] = None

    def leave(self, connection: ServerConnection) -> None:
        """Stop counting a connection: admitted to a slot, or closed; nothing if it was not counted."""
        peer = self._pending.pop(connection, None)
        if peer is None:
            return
        from_peer = self._by_peer[peer]
        del from_peer[connection]
        if not from_peer:
            del self._by_peer[peer]

    def _evict(self, connection: ServerConnection, reason: str) -> None:
        peer = self._pending[connection]
        self.leave(connection)
        self._evicted.record(listener=self._listener, reason=reason, peer=peer)
        # No close handshake to wait for: nothing was said on this connection yet (or nothing answered).
        connection.transport.abort()


def counted_by(pool: HandshakePool) -> type[ServerConnection]:
    """A ServerConnection class, for websockets' `serve(create_connection=...)`, that `pool` counts."""

    class PooledConnection(ServerConnection):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            pool.enter(self)

        def connection_lost(self, exc: Exception | None) -> None:
            pool.leave(self)
            super().connection_lost(exc)

    return PooledConnection


def deepen_listen_queue(server: Server, depth: int = LISTEN_QUEUE) -> None:
    """Let the kernel queue `depth` connections for `server`'s sockets.

    asyncio listens with the backlog it is given and also accepts at most that many sockets per
    wakeup; the server keeps the latter small (descriptors it must keep in reserve) and, by
    listening again on a duplicate of each socket, the former deep.
    """
    for sock in server.sockets:
        with sock.dup() as duplicate:
            duplicate.listen(depth)
