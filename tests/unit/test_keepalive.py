"""The server-wide keepalive loop: members that answer pings stay, the one that stops is closed."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import cast

from minimess.adapters.websocket_server.connection import ping_would_wait
from minimess.adapters.websocket_server.keepalive import PINGS_PER_TURN, KeepAlive
from tests.timeouts import scaled
from tests.unit.fakes import FakeTransport

INTERVAL = 0.02
TIMEOUT = 0.05


class Member:
    """A connection as the loop sees it: answers its pings (or not), counts them, records its close."""

    def __init__(self, answers: bool = True, pushes_back: bool = False) -> None:
        self.answers = answers
        # True: the socket pushes back, and no ping is sent.
        self.pushes_back = pushes_back
        self.pings = 0
        # Ping calls, sent or not.
        self.asked = 0
        self.pinged = asyncio.Event()
        self.timed_out = asyncio.Event()

    async def ping(self) -> asyncio.Future[float] | None:
        self.asked += 1
        self.pinged.set()
        if self.pushes_back:
            return None
        self.pings += 1
        pong: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if self.answers:
            # Answered in a later turn, as a pong read from the socket would be.
            asyncio.get_running_loop().call_soon(pong.set_result, 0.001)
        return pong

    def ping_timed_out(self) -> None:
        self.timed_out.set()

    async def asked_at_least(self, count: int) -> None:
        while self.asked < count:
            self.pinged.clear()
            await self.pinged.wait()


async def test_a_member_that_stops_answering_is_closed_and_those_that_answer_are_pinged_on() -> None:
    keep_alive = KeepAlive(INTERVAL, TIMEOUT)
    answering, silent, pushing_back = Member(), Member(answers=False), Member(pushes_back=True)
    async with keep_alive.running():
        for member in (answering, silent, pushing_back):
            keep_alive.add(member)
        async with asyncio.timeout(scaled(10)):
            await silent.timed_out.wait()
            # Pinged on and on after the silent one was closed, without a pong missed.
            pings_then = answering.pings
            await answering.asked_at_least(pings_then + 3)
            await pushing_back.asked_at_least(3)
    assert silent.pings == 1
    assert not answering.timed_out.is_set()
    # A socket that pushes back is asked again later, and its client is not closed for it.
    assert pushing_back.pings == 0
    assert not pushing_back.timed_out.is_set()


async def test_a_member_that_left_is_neither_pinged_nor_closed() -> None:
    keep_alive = KeepAlive(INTERVAL, TIMEOUT)
    gone, staying = Member(answers=False), Member()
    async with keep_alive.running():
        keep_alive.add(gone)
        keep_alive.add(staying)
        async with asyncio.timeout(scaled(10)):
            await gone.asked_at_least(1)
            keep_alive.discard(gone)
            # Long past the gone one's pong deadline.
            await staying.asked_at_least(staying.asked + int(TIMEOUT / INTERVAL) + 3)
    assert gone.asked == 1
    assert not gone.timed_out.is_set()


async def test_a_burst_of_members_is_pinged_in_slices_with_turns_between_them() -> None:
    """Members that joined in one turn are due in one turn: the loop lets others run between slices."""
    keep_alive = KeepAlive(INTERVAL, 10.0)
    members = [Member() for _ in range(3 * PINGS_PER_TURN)]
    # What was pinged when another task got a turn, each time it got one.
    seen: list[int] = []

    async def watch() -> None:
        while True:
            seen.append(sum(member.pings for member in members))
            await asyncio.sleep(0)

    async with keep_alive.running():
        for member in members:
            keep_alive.add(member)
        watcher = asyncio.create_task(watch())
        try:
            async with asyncio.timeout(scaled(10)):
                for member in members:
                    await member.asked_at_least(1)
        finally:
            watcher.cancel()
    # Another task ran while some members had their ping and others not yet.
    assert any(0 < pinged < len(members) for pinged in seen)


async def test_an_interval_of_zero_pings_no_one() -> None:
    keep_alive = KeepAlive(0, TIMEOUT)
    member = Member(answers=False)
    async with keep_alive.running():
        keep_alive.add(member)
        # The loop has nothing to wait for: it sleeps until woken, and nothing wakes it.
        for _ in range(10):
            await asyncio.sleep(0)
    assert member.asked == 0


class Broken(Member):
    """A member whose ping meets a bug."""

    async def ping(self) -> asyncio.Future[float] | None:
        self.asked += 1
        self.pinged.set()
        raise RuntimeError("a bug")


async def test_a_ping_that_fails_with_a_bug_leaves_the_loop_pinging_the_others() -> None:
    keep_alive = KeepAlive(INTERVAL, TIMEOUT)
    broken, answering = Broken(), Member()
    async with keep_alive.running():
        keep_alive.add(broken)
        keep_alive.add(answering)
        async with asyncio.timeout(scaled(10)):
            await broken.asked_at_least(2)
            await answering.asked_at_least(3)
    assert not answering.timed_out.is_set()


def test_a_ping_waits_for_the_socket_only_when_its_frame_would_cross_the_high_water_mark() -> None:
    transport = FakeTransport()
    high = transport.get_write_buffer_limits()[1]
    transport.buffered = high - 6
    assert not ping_would_wait(cast(asyncio.WriteTransport, transport))
    transport.buffered = high - 5
    assert ping_would_wait(cast(asyncio.WriteTransport, transport))


async def test_a_member_that_left_is_not_kept_alive_by_its_place_in_the_schedules() -> None:
    """A closed connection's memory goes when it does, not when its next ping or pong is due."""
    keep_alive = KeepAlive(INTERVAL, timeout=3600)
    waiting_for_pong, waiting_for_ping = Member(answers=False), Member(answers=False)
    async with keep_alive.running():
        keep_alive.add(waiting_for_pong)
        async with asyncio.timeout(scaled(10)):
            await waiting_for_pong.asked_at_least(1)  # its pong is awaited for an hour
        keep_alive.add(waiting_for_ping)  # its ping is due an interval from now
        gone = [weakref.ref(waiting_for_pong), weakref.ref(waiting_for_ping)]
        for member in (waiting_for_pong, waiting_for_ping):
            keep_alive.discard(member)
        del member, waiting_for_pong, waiting_for_ping
        gc.collect()
        assert [held() for held in gone] == [None, None]
