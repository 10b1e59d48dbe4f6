"""Positions, recovery after a reconnect and idempotent publish, against real servers."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from tests.integration.kafka_process import KafkaProcess, fresh_kafka_topic, kafka_serve_args
from tests.integration.server_process import ServerProcess, wait_status
from tests.integration.wire import next_frame, open_client, publish, send_frame, stats, unique

pytestmark = pytest.mark.integration

StartServer = Callable[..., ServerProcess]
READY_WITHIN = 20.0


def position(frame: dict[str, Any]) -> dict[str, Any]:
    return {"epoch": frame["epoch"], "offset": frame["offset"]}


async def publish_all(connection: ClientConnection, topic: str, bodies: list[str]) -> list[dict[str, Any]]:
    return [await publish(connection, topic, body, f"p-{n}") for n, body in enumerate(bodies)]


async def messages(connection: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [await next_frame(connection, "message") for _ in range(count)]


async def resubscribe(connection: ClientConnection, topic: str, since: dict[str, Any]) -> dict[str, Any]:
    await send_frame(connection, type="sub", topic=topic, since=since, ref="again")
    subscribed = await next_frame(connection, "subscribed")
    assert subscribed["topic"] == topic, subscribed
    return subscribed


async def test_every_subscriber_and_the_publisher_see_the_same_increasing_positions(
    server: ServerProcess,
) -> None:
    """Acks and messages carry one epoch and strictly increasing offsets, the same for everybody."""
    room = unique("room")
    alice, bob = [await open_client(server, unique(uid), room) for uid in ("alice", "bob")]
    publisher = await open_client(server, unique("carol"))
    try:
        acks = await publish_all(publisher, room, ["one", "two", "three"])
        seen = [await messages(connection, 3) for connection in (alice, bob)]
        assert [position(m) for m in seen[0]] == [position(m) for m in seen[1]] == [position(a) for a in acks]
        offsets = [ack["offset"] for ack in acks]
        assert offsets == sorted(set(offsets))
        assert len({ack["epoch"] for ack in acks}) == 1
    finally:
        await asyncio.gather(alice.close(), bob.close(), publisher.close())


async def test_a_subscriber_that_comes_back_with_since_gets_what_it_missed_then_live_each_once(
    server: ServerProcess,
) -> None:
    """Missed messages follow `subscribed` (recovered true) in order, before the live ones, once each."""
    room, uid = unique("room"), unique("alice")
    publisher = await open_client(server, unique("bob"))
    alice = await open_client(server, uid, room)
    try:
        await publish(publisher, room, "seen", "seen")
        last_seen = position(await next_frame(alice, "message"))
        await alice.close()
        missed = await publish_all(publisher, room, [f"missed {n}" for n in range(5)])

        alice = await open_client(server, uid)
        subscribed = await resubscribe(alice, room, last_seen)
        assert (subscribed["recovered"], position(subscribed)) == (True, position(missed[-1]))
        await publish(publisher, room, "live", "live")
        got = await messages(alice, 6)
        assert [m["body"] for m in got] == [*(f"missed {n}" for n in range(5)), "live"]
        assert [m["id"] for m in got[:5]] == [ack["id"] for ack in missed]

        # Nothing missed since: recovered, and nothing replayed before the next live message.
        await alice.close()
        alice = await open_client(server, uid)
        subscribed = await resubscribe(alice, room, position(got[-1]))
        assert subscribed["recovered"] is True
        await publish(publisher, room, "next", "next")
        assert (await next_frame(alice, "message"))["body"] == "next"
    finally:
        await asyncio.gather(alice.close(), publisher.close())


async def test_the_url_may_carry_a_position_and_is_answered_by_subscribed_after_success(
    server: ServerProcess,
) -> None:
    """`/topic:<topic>@<epoch>:<offset>` recovers like a `sub` with `since`."""
    room, uid = unique("room"), unique("alice")
    publisher = await open_client(server, unique("bob"))
    try:
        first = await publish(publisher, room, "before", "before")
        missed = await publish_all(publisher, room, ["a", "b"])
        alice = await open_client(server, uid, f"{room}@{first['epoch']}:{first['offset']}")
        subscribed = await next_frame(alice, "subscribed")
        assert (subscribed["recovered"], subscribed["offset"]) == (True, missed[-1]["offset"])
        assert [m["body"] for m in await messages(alice, 2)] == ["a", "b"]
        await alice.close()
    finally:
        await publisher.close()


async def test_recovery_is_refused_for_another_epoch_a_position_ahead_or_one_the_history_forgot(
    start_server: StartServer,
) -> None:
    """recovered false, nothing replayed, live messages as usual."""
    server = start_server("--tick", "0", "--history-size", "3")
    room = unique("room")
    publisher = await open_client(server, unique("bob"))
    alice = await open_client(server, unique("alice"))
    try:
        acks = await publish_all(publisher, room, [f"m{n}" for n in range(6)])
        epoch = acks[0]["epoch"]
        for since in (
            {"epoch": "mem-0000000000000000", "offset": 1},  # another epoch (another server start)
            {"epoch": epoch, "offset": 10**12},  # ahead of everything published
            {"epoch": epoch, "offset": 0},  # offsets 1 and 2 are no longer kept (3 per topic)
        ):
            subscribed = await resubscribe(alice, room, since)
            assert (subscribed["recovered"], position(subscribed)) == (False, position(acks[-1])), since
            await send_frame(alice, type="unsub", topic=room)
            await next_frame(alice, "unsubscribed")
        # Offset 2 onwards is kept: that recovers.
        subscribed = await resubscribe(alice, room, {"epoch": epoch, "offset": 2})
        assert subscribed["recovered"] is True
        assert [m["body"] for m in await messages(alice, 3)] == ["m3", "m4", "m5"]
    finally:
        await asyncio.gather(alice.close(), publisher.close())


async def test_a_restarted_memory_server_has_a_new_epoch_and_says_recovered_false(
    start_server: StartServer,
) -> None:
    """The memory broker keeps nothing across a restart; the client is told, not left guessing."""
    server = start_server("--tick", "0")
    room = unique("room")
    publisher = await open_client(server, unique("bob"))
    ack = await publish(publisher, room, "before the restart", "before")
    await publisher.close()
    port = server.port
    server.signal(signal.SIGKILL)
    await asyncio.to_thread(server.wait, 10)
    server.start(port)
    alice = await open_client(server, unique("alice"))
    try:
        subscribed = await resubscribe(alice, room, position(ack))
        assert subscribed["recovered"] is False
        assert subscribed["epoch"] != ack["epoch"]
    finally:
        await alice.close()


async def test_a_pub_with_an_id_is_delivered_once_however_often_it_is_sent(server: ServerProcess) -> None:
    """The same id again: acknowledged with the original position, not delivered again."""
    room = unique("room")
    message_id = unique("client-chosen-id").replace("-", "_")
    watcher = await open_client(server, unique("alice"), room)
    publisher = await open_client(server, unique("bob"))
    try:
        acks = []
        for attempt in range(3):
            await send_frame(publisher, type="pub", topic=room, body="once", ref=f"a{attempt}", id=message_id)
            acks.append(await next_frame(publisher, "ack"))
        assert {(ack["id"], ack["offset"], ack["epoch"]) for ack in acks} == {
            (message_id, acks[0]["offset"], acks[0]["epoch"])
        }
        await publish(publisher, room, "marker", "marker")
        assert [m["body"] for m in await messages(watcher, 2)] == ["once", "marker"]
        assert (await stats(server))["messages_published"] >= 1
    finally:
        await asyncio.gather(watcher.close(), publisher.close())


async def test_kafka_a_client_recovers_on_another_server_from_its_history_and_past_it_from_kafka(
    kafka: KafkaProcess, start_server: StartServer
) -> None:
    """Positions are the same on every server, so a client moved to another server resumes there.

    s2 keeps two messages per topic: five missed ones come from Kafka itself (counted as a replay).
    """
    topic = fresh_kafka_topic()
    s1 = start_server(*kafka_serve_args(kafka, topic, "s1"))
    # /stats rendered at every request: read twice within a second, the second would otherwise be
    # the first one's rendering, and could not show a second replay.
    s2 = start_server(*kafka_serve_args(kafka, topic, "s2"), "--history-size", "2", "--metrics-max-age", "0")
    for server in (s1, s2):
        await asyncio.to_thread(wait_status, server, "/readyz", 200, READY_WITHIN)
    room, uid = unique("room"), unique("alice")
    publisher = await open_client(s1, unique("bob"))
    alice = await open_client(s1, uid, room)
    # A watcher on s2 tells when s2 has received them all (it keeps only the last two).
    watcher = await open_client(s2, unique("carol"), room)
    try:
        await publish(publisher, room, "seen", "seen")
        last_seen = position(await next_frame(alice, "message", within=15))
        await alice.close()
        missed = await publish_all(publisher, room, [f"missed {n}" for n in range(5)])
        got = await messages(watcher, 6)
        assert [m["id"] for m in got[1:]] == [ack["id"] for ack in missed]

        alice = await open_client(s2, uid)
        subscribed = await resubscribe(alice, room, last_seen)
        assert (subscribed["recovered"], subscribed["epoch"]) == (True, last_seen["epoch"])
        got = await messages(alice, 5)
        assert [(m["id"], m["offset"]) for m in got] == [(a["id"], a["offset"]) for a in missed]
        assert (await stats(s2))["broker"]["replays"] == 1

        # From the history of s2 (its last two): no Kafka read.
        await alice.close()
        alice = await open_client(s2, uid)
        assert (await resubscribe(alice, room, position(missed[2])))["recovered"] is True
        assert [m["body"] for m in await messages(alice, 2)] == ["missed 3", "missed 4"]
        assert (await stats(s2))["broker"]["replays"] == 1
    finally:
        await asyncio.gather(alice.close(), publisher.close(), watcher.close())


async def test_several_url_topics_recover_one_after_the_other_within_a_small_queue(
    start_server: StartServer,
) -> None:
    """Each replay fits the queue alone, all of them together do not: each waits for the one before."""
    server = start_server("--tick", "0", "--queue-size", "10")
    rooms, uid = [unique("a"), unique("b")], unique("alice")
    publisher = await open_client(server, unique("bob"))
    try:
        firsts = [await publish(publisher, room, "seen", f"seen-{room}") for room in rooms]
        for room in rooms:
            await publish_all(publisher, room, [f"{room} {n}" for n in range(6)])
        alice = await open_client(
            server,
            uid,
            *(
                f"{room}@{first['epoch']}:{first['offset']}"
                for room, first in zip(rooms, firsts, strict=True)
            ),
        )
        for room in rooms:
            subscribed = await next_frame(alice, "subscribed")
            assert (subscribed["topic"], subscribed["recovered"]) == (room, True)
            assert [m["body"] for m in await messages(alice, 6)] == [f"{room} {n}" for n in range(6)]
        await alice.close()
    finally:
        await publisher.close()
