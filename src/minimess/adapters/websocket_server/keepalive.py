"""The server-wide keepalive: one loop that pings every connection in turn and closes those gone silent."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import weakref
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol

import structlog
from websockets.exceptions import ConnectionClosed

log = structlog.get_logger(__name__)

# Pings sent in one turn of the event loop at most: connections that came in a burst are due in a
# burst, and the loop lets other work run between slices of them.
PINGS_PER_TURN = 100


class KeptAlive(Protocol):
    """A connection the keepalive loop looks after."""

    async def ping(self) -> asyncio.Future[float] | None:
        """Send a ping now, without waiting for the socket; what resolves on its pong, or None: not now."""
        ...

    def ping_timed_out(self) -> None:
        """No pong came within the timeout: close the connection (without waiting for it)."""
        ...


class KeepAlive:
    """Pings each connection `interval` seconds after it joined and `interval` after each pong.

    What the seed did with a pinger task per connection, one loop does for all (a task and its
    sleep per connection: 1.6 of an idle connection's 24.8 KiB, see docs/performance.md). A
    connection's next ping is due `interval` after its last pong, so pings are spread over the
    interval as the connections' arrivals were, and a burst of them is sent in slices. A pong
    that has not come `timeout` seconds after its ping closes the connection (`ping_timed_out`).
    An interval of 0 pings no one.

    Both schedules are deques in time order: every entry is put at the end with the same delay
    from now, so the earliest is always first and nothing is ever sorted. A connection that
    leaves stays in them until its entry comes up, and is then skipped; the entries hold it
    weakly, so that they do not keep it until then (after a storm of reconnects, up to an
    interval's worth of closed connections): it goes when the collector finds its cycles.
    """

    def __init__(self, interval: float, timeout: float) -> None:
        self.interval = interval
        self.timeout = timeout
        # The connections looked after now.
        self._members: set[KeptAlive] = set()
        # (when, connection): the next ping of each connection, earliest first.
        self._pings: deque[tuple[float, weakref.ref[KeptAlive]]] = deque()
        # (deadline, connection, pong): pings sent whose pong is awaited, earliest deadline first.
        self._pongs: deque[tuple[float, weakref.ref[KeptAlive], asyncio.Future[float]]] = deque()
        # When the loop wakes next (inf: when woken), and what wakes it earlier.
        self._wake_at = math.inf
        self._woken = asyncio.Event()

    def add(self, member: KeptAlive) -> None:
        """Look after `member` from now: its first ping is due `interval` from now."""
        if self.interval == 0:
            return
        self._members.add(member)
        self._schedule_ping(member)

    def discard(self, member: KeptAlive) -> None:
        """Stop looking after `member` (it is closing)."""
        self._members.discard(member)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the loop for as long as the block runs."""
        task = asyncio.create_task(self.run())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def run(self) -> None:
        """Ping what is due and close what timed out, sleeping in between until the next is due."""
        loop = asyncio.get_running_loop()
        while True:
            await self._ping_due(loop.time())
            self._close_timed_out(loop.time())
            self._wake_at = min(
                self._pings[0][0] if self._pings else math.inf,
                self._pongs[0][0] if self._pongs else math.inf,
            )
            self._woken.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(None if self._wake_at == math.inf else self._wake_at):
                    await self._woken.wait()

    async def _ping_due(self, now: float) -> None:
        pings, members = self._pings, self._members
        sent = 0
        while pings and pings[0][0] <= now:
            _, held = pings.popleft()
            member = held()
            if member is None or member not in members:
                continue
            try:
                pong = await member.ping()
            except ConnectionClosed:
                continue
            except Exception:
                # A bug met one connection's ping: the loop goes on for all the others.
                log.exception("keepalive_ping_failed")
                self._schedule_ping(member)
                continue
            if pong is None:
                # The socket pushes back, or the connection is closing: as the seed's pinger,
                # which waited for the socket, no pong is asked for from a client that does not read.
                self._schedule_ping(member)
                continue
            self._await_pong(held, pong)
            sent += 1
            if sent % PINGS_PER_TURN == 0:
                await asyncio.sleep(0)
                now = asyncio.get_running_loop().time()

    def _close_timed_out(self, now: float) -> None:
        pongs, members = self._pongs, self._members
        while pongs and pongs[0][0] <= now:
            _, held, pong = pongs.popleft()
            member = held()
            if member is not None and member in members and not pong.done():
                members.discard(member)
                member.ping_timed_out()

    def _await_pong(self, held: weakref.ref[KeptAlive], pong: asyncio.Future[float]) -> None:
        deadline = asyncio.get_running_loop().time() + self.timeout
        self._pongs.append((deadline, held, pong))
        self._wake_by(deadline)
        pong.add_done_callback(functools.partial(self._ponged, held))

    def _ponged(self, held: weakref.ref[KeptAlive], pong: asyncio.Future[float]) -> None:
        # A ping the connection's close ended (with ConnectionClosed) asks for no next one.
        member = held()
        if member is None or pong.cancelled() or pong.exception() is not None:
            return
        if member in self._members:
            self._schedule_ping(member)

    def _schedule_ping(self, member: KeptAlive) -> None:
        due = asyncio.get_running_loop().time() + self.interval
        self._pings.append((due, weakref.ref(member)))
        self._wake_by(due)

    def _wake_by(self, when: float) -> None:
        if when < self._wake_at:
            self._wake_at = when
            self._woken.set()
