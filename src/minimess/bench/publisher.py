"""The publisher: one connection that publishes at a steady rate or floods, and counts the answers."""

from __future__ import annotations

import asyncio
import json
import time
from array import array
from collections import Counter
from collections.abc import Sequence

import attrs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

PUBLISHER_UID = "bench-publisher"


@attrs.define
class PublishReport:
    """How publishing went; times are wall-clock seconds since the epoch."""

    acked: int = 0
    errors: Counter[str] = attrs.field(factory=Counter)
    unanswered: int = 0
    started: float = 0.0
    finished: float = 0.0
    # Server read -> broker accepted, per acked publish, in microseconds (--trace only).
    accept_us: array[int] = attrs.field(factory=lambda: array("q"))


@attrs.frozen
class PublishPlan:
    """What to publish: `messages` messages round-robin over `topics`, `rate` per second (0: flood)."""

    topics: Sequence[str]
    messages: int
    rate: float
    body_bytes: int
    # Publishes sent and not yet answered, at most: a flood is as fast as the server answers.
    window: int
    answer_timeout: float


async def publish(url: str, plan: PublishPlan) -> PublishReport:
    """Publish the plan through a server at `url` and wait for every ack or error."""
    report = PublishReport()
    async with connect(f"{url}/subscribe/id:{PUBLISHER_UID}", compression=None, max_queue=None) as connection:
        await connection.recv()  # `success`
        slots = asyncio.Semaphore(plan.window)
        all_answered = asyncio.Event()
        reader = asyncio.create_task(_read_answers(connection, plan.messages, slots, all_answered, report))
        if plan.messages == 0:
            all_answered.set()
        # The body starts with the send time (µs) so that subscribers can time it without --trace.
        padding = "x" * max(0, plan.body_bytes - 17)
        start = time.monotonic()
        report.started = time.time()
        for number in range(plan.messages):
            if plan.rate:
                # Each send has its own slot on the clock, so one late send does not delay the rest.
                delay = start + number / plan.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await slots.acquire()
            sent_us = time.time_ns() // 1000
            frame = {
                "type": "pub",
                "topic": plan.topics[number % len(plan.topics)],
                "body": f"{sent_us} {padding}",
                "ref": str(number),
                "sent": sent_us,
            }
            await connection.send(json.dumps(frame, separators=(",", ":")))
        try:
            async with asyncio.timeout(plan.answer_timeout):
                await all_answered.wait()
        except TimeoutError:
            pass
        reader.cancel()
        report.unanswered = plan.messages - report.acked - report.errors.total()
        return report


async def _read_answers(
    connection: ClientConnection,
    expected: int,
    slots: asyncio.Semaphore,
    all_answered: asyncio.Event,
    report: PublishReport,
) -> None:
    answered = 0
    try:
        async for data in connection:
            document = json.loads(data)
            kind = document.get("type")
            if kind == "ack":
                report.acked += 1
                trace = document.get("trace")
                if isinstance(trace, dict):
                    report.accept_us.append(int(trace["accepted"]) - int(trace["received"]))
            elif kind == "error":
                report.errors[str(document.get("code"))] += 1
            else:
                continue
            answered += 1
            report.finished = time.time()
            slots.release()
            if answered == expected:
                all_answered.set()
    except ConnectionClosed:
        all_answered.set()
