"""How many connections may be open, in all and per client address, within the process's file limit."""

from __future__ import annotations

import asyncio
import resource
from collections import Counter
from typing import Final

import attrs
import structlog
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from minimess.adapters.websocket_server.client_address import (
    Network,
    forwarded_for,
    peer_address,
    real_client_address,
)
from minimess.adapters.websocket_server.log_context import connection_id
from minimess.adapters.websocket_server.log_throttle import ThrottledEvent

log = structlog.get_logger(__name__)

# Descriptors kept back from connections: the process's own (the listening sockets, the event
# loop, logs, Kafka's connections: about 20), and the sockets accepted that no pool counts yet.
# A wakeup of the event loop accepts up to a listen backlog of sockets; they reach the handshake
# pool a wakeup later, and the ones it evicts close a wakeup after that: under a flood, three
# wakeups' accepts are open that the pool has not made room for.
PROCESS_FILES: Final = 32
ACCEPT_BACKLOG: Final = 16
FILE_RESERVE: Final = PROCESS_FILES + 3 * ACCEPT_BACKLOG
# The admin listener's pending connections and its backlog (it only answers short requests).
ADMIN_HANDSHAKES: Final = 8
ADMIN_FILES: Final = 4 * ADMIN_HANDSHAKES
# The derived handshake pool: an eighth of the room, within these bounds. Honest handshakes last
# a round trip; the pool must outlast the accepts of the wakeups until a request sent with the
# connection is read, or a flood would evict it first.
_HANDSHAKES_MIN: Final = 4 * ACCEPT_BACKLOG
_HANDSHAKES_MAX: Final = 1024
# Where the file limit is unlimited, as many descriptors as Linux gives a process by default.
_UNLIMITED_FILES: Final = 1 << 20


@attrs.frozen
class ConnectionCaps:
    """The caps a server enforces, after fitting `--max-connections` under the file limit."""

    max_connections: int
    # 0: no cap per address.
    max_connections_per_ip: int
    # What --max-connections asked for (0: derive it), and the soft limit on open files.
    requested: int
    file_limit: int
    # Connections accepted whose request is not admitted yet, at most (the handshake pool).
    max_handshakes: int

    @property
    def lowered(self) -> bool:
        """Whether --max-connections asked for more than the file limit leaves room for."""
        return self.requested > self.max_connections


def fit_caps(
    requested: int,
    per_ip: int,
    file_limit: int,
    reserve: int = FILE_RESERVE,
    handshakes: int = 0,
) -> ConnectionCaps:
    """The caps that fit under `file_limit` with `reserve` descriptors left: each at least 1.

    Every accepted connection is either pending (in the handshake pool) or admitted (in a slot),
    so the pool's descriptors come out of the room before the global cap: `requested` (0: as
    many as fit) is lowered to what is left. `handshakes` 0 derives the pool from the room.
    """
    if file_limit == resource.RLIM_INFINITY or file_limit < 0:
        file_limit = _UNLIMITED_FILES
    room = max(file_limit - reserve, 1)
    pool = handshakes or min(max(room // 8, _HANDSHAKES_MIN), _HANDSHAKES_MAX)
    # Under a tiny file limit, half the room at most: admitted connections need some too.
    pool = max(min(pool, room // 2), 1)
    left = max(room - pool, 1)
    total = left if requested == 0 else min(requested, left)
    return ConnectionCaps(total, per_ip, requested, file_limit, pool)


def current_file_limit() -> int:
    """The soft limit on this process's open files."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class ConnectionSlots:
    """Counts connections from their admission until their TCP connection is closed, and refuses more.

    Released on the connection's `connection_lost_waiter`, which websockets resolves however the
    connection ends: a closing handshake, a handshake that fails or times out after admission, a
    client gone. So the count follows open descriptors, not sessions.
    """

    def __init__(self, caps: ConnectionCaps, trusted_proxies: tuple[Network, ...] = ()) -> None:
        self.caps = caps
        self._trusted = trusted_proxies
        # Admitted connections whose TCP connection is not closed yet, in all and per client address.
        self.open = 0
        self._per_address: Counter[str] = Counter()
        # Refusals come in floods when they come: a line a second per status, with the count.
        self._refused = {
            503: ThrottledEvent("connections_refused", level="info"),
            429: ThrottledEvent("connections_refused", level="info"),
        }

    def open_from(self, address: str) -> int:
        return self._per_address[address]

    def admit(self, connection: ServerConnection, request: Request) -> Response | None:
        """Take a slot for this connection until it closes (None), or a 503 or 429 refusal."""
        address = real_client_address(peer_address(connection), forwarded_for(request.headers), self._trusted)
        refusal = self._refusal(address)
        if refusal is not None:
            status, reason = refusal
            self._refused[status].record(status=status, reason=reason, client=address)
            return connection.respond(status, reason + "\n")
        self._take(address, connection.connection_lost_waiter, connection_id(connection))
        return None

    def _refusal(self, address: str) -> tuple[int, str] | None:
        if self.open >= self.caps.max_connections:
            return 503, f"server full: {self.caps.max_connections} connections open (--max-connections)"
        per_ip = self.caps.max_connections_per_ip
        if per_ip and self._per_address[address] >= per_ip:
            return 429, f"too many connections from your address: {per_ip} open (--max-connections-per-ip)"
        return None

    def _take(self, address: str, closed: asyncio.Future[None], connection: str) -> None:
        self.open += 1
        self._per_address[address] += 1
        closed.add_done_callback(lambda _: self._release(address, connection))

    def _release(self, address: str, connection: str) -> None:
        self.open -= 1
        self._per_address[address] -= 1
        if not self._per_address[address]:
            del self._per_address[address]
        log.debug("connection_slot_released", connection_id=connection, client=address, open=self.open)
