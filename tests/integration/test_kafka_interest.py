"""Two Kafka servers that each read only the partitions, and decode only the topics, their clients need."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from minimess.adapters.kafka.broker import partition_of
from minimess.domain.model import Topic
from tests.integration.kafka_process import KafkaProcess, fresh_kafka_topic, kafka_serve_args
from tests.integration.server_process import ServerProcess, wait_status
from tests.integration.wire import logged, next_frame, open_client, publish, scrape, send_frame

pytestmark = pytest.mark.integration

StartServer = Callable[..., ServerProcess]
READY_WITHIN = 20.0
PARTITIONS = 3
ROOM = "room"
P_ROOM = partition_of(Topic(ROOM), PARTITIONS)
# A topic in the partition of ROOM, and one in another partition.
NEIGHBOUR = next(f"hall-{n}" for n in range(1000) if partition_of(Topic(f"hall-{n}"), PARTITIONS) == P_ROOM)
ELSEWHERE = next(f"yard-{n}" for n in range(1000) if partition_of(Topic(f"yard-{n}"), PARTITIONS) != P_ROOM)
P_ELSEWHERE = partition_of(Topic(ELSEWHERE), PARTITIONS)


async def two_servers(start_server: StartServer, kafka: KafkaProcess) -> tuple[ServerProcess, ServerProcess]:
    topic = fresh_kafka_topic()
    # Every scrape rendered anew: a test reads /metrics again right after what it changed.
    servers = [
        start_server(*kafka_serve_args(kafka, topic, node, PARTITIONS), "--metrics-max-age", "0")
        for node in ("a", "b")
    ]
    for server in servers:
        await asyncio.to_thread(wait_status, server, "/readyz", 200, READY_WITHIN)
    return servers[0], servers[1]


async def assigned(server: ServerProcess) -> set[int]:
    """The partitions the server reads: those its consumer lag is reported for."""
    lag = (await scrape(server.http_url("/metrics"))).series("minimess_kafka_consumer_lag")
    return {int(dict(labels)["partition"]) for labels in lag}


def position(frame: dict[str, Any]) -> dict[str, Any]:
    return {"epoch": frame["epoch"], "offset": frame["offset"]}


async def messages(connection: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [await next_frame(connection, "message") for _ in range(count)]


async def test_a_server_neither_reads_nor_decodes_topics_only_the_other_needs_and_recovers_them_from_kafka(
    kafka: KafkaProcess, start_server: StartServer
) -> None:
    """ROOM is subscribed on A only: B passes its records over unread, counted; a client joining
    ROOM on B later with a position from before is recovered from Kafka, whole, in order, once."""
    a, b = await two_servers(start_server, kafka)
    on_a = await open_client(a, "alice", ROOM)
    on_b = await open_client(b, "bob", NEIGHBOUR)
    publisher = await open_client(a, "carol")
    try:
        assert await assigned(b) == {P_ROOM}
        acks = [await publish(publisher, ROOM, f"m{n}", f"r{n}") for n in range(5)]
        await publish(publisher, ELSEWHERE, "not for b", "e")
        marker = await publish(publisher, NEIGHBOUR, "marker", "n")
        assert [frame["id"] for frame in await messages(on_a, 5)] == [ack["id"] for ack in acks]
        # B's client gets the marker next and nothing of ROOM: B read past ROOM's records.
        assert (await next_frame(on_b, "message"))["id"] == marker["id"]
        metrics = await scrape(b.http_url("/metrics"))
        assert metrics.value("minimess_kafka_records_skipped_total", reason="not_needed") == len(acks)
        assert metrics.value("minimess_kafka_records_skipped_total", reason="undecodable") == 0
        assert metrics.value("minimess_deliveries_total") == 1
        # A publishes on ELSEWHERE, so reads its partition too (for retries of that publish); B never.
        assert await assigned(a) == {P_ROOM, P_ELSEWHERE}
        assert P_ELSEWHERE not in await assigned(b)

        late = await open_client(b, "dave")
        await send_frame(late, type="sub", topic=ROOM, since=position(acks[0]), ref="late")
        subscribed = await next_frame(late, "subscribed")
        assert subscribed["recovered"] is True, subscribed
        assert [frame["id"] for frame in await messages(late, 4)] == [ack["id"] for ack in acks[1:]]
        after = await publish(publisher, ROOM, "live", "live")
        assert (await next_frame(late, "message"))["id"] == after["id"]
        assert (await scrape(b.http_url("/metrics"))).value("minimess_kafka_replays_total") == 1
        await late.close()
        await on_b.close()
        # Nobody on B needs the partition any more: it is let go at the next probe.
        await logged(b, "kafka_partitions_assigned", partitions=[], count=2)  # the first: at start
        assert await assigned(b) == set()
    finally:
        await asyncio.gather(on_a.close(), on_b.close(), publisher.close())


async def test_subscriptions_churning_on_a_server_lose_and_repeat_nothing_for_its_other_subscribers(
    kafka: KafkaProcess, start_server: StartServer
) -> None:
    """While a client on B subscribes and unsubscribes a topic of another partition (B's assignment
    changes each time), B's subscriber of ROOM gets every message once in order, and a recovery from
    a position in the middle still gives the rest."""
    a, b = await two_servers(start_server, kafka)
    watcher = await open_client(b, "watcher", ROOM)
    churner = await open_client(b, "churner")
    publisher = await open_client(a, "carol")
    rounds, per_step = 5, 20
    try:
        acks: list[dict[str, Any]] = []
        for round_ in range(rounds):
            await send_frame(churner, type="sub", topic=ELSEWHERE, ref=f"s{round_}")
            await next_frame(churner, "subscribed")
            acks += [
                await publish(publisher, ROOM, f"m{len(acks)}", f"r{len(acks) + n}") for n in range(per_step)
            ]
            await send_frame(churner, type="unsub", topic=ELSEWHERE, ref=f"u{round_}")
            await next_frame(churner, "unsubscribed")
            acks += [
                await publish(publisher, ROOM, f"m{len(acks)}", f"r{len(acks) + n}") for n in range(per_step)
            ]
            # Let go at a probe: the first [P_ROOM] came with the watcher's subscription.
            await logged(b, "kafka_partitions_assigned", partitions=[P_ROOM], count=round_ + 2)
        received = await messages(watcher, len(acks))
        assert [frame["id"] for frame in received] == [ack["id"] for ack in acks]
        offsets = [frame["offset"] for frame in received]
        assert offsets == sorted(set(offsets))
        marker = await publish(publisher, ROOM, "marker", "marker")
        assert (await next_frame(watcher, "message"))["id"] == marker["id"]

        back = await open_client(b, "back")
        middle = len(acks) // 2
        await send_frame(back, type="sub", topic=ROOM, since=position(acks[middle]), ref="back")
        subscribed = await next_frame(back, "subscribed")
        assert subscribed["recovered"] is True, subscribed
        rest = [ack["id"] for ack in acks[middle + 1 :]] + [marker["id"]]
        assert [frame["id"] for frame in await messages(back, len(rest))] == rest
        await back.close()
    finally:
        await asyncio.gather(watcher.close(), churner.close(), publisher.close())
