"""The publishers: connections that each publish a share of a round, steadily or flooding."""

from __future__ import annotations

import asyncio
import json
import time
from array import array
from collections import Counter
from collections.abc import AsyncIterator, Sequence

import attrs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from minimess.bench import frames

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
    """What to publish: `messages` messages round-robin over `topics`, `rate` per second (0: flood).

    With several publishers, publisher `share` of `shares` sends the messages numbered `share`,
    `share + shares`, ...: together they send every message once, each on its topic and on its slot
    of the round's clock.
    """

    topics: Sequence[str]
    messages: int
    rate: float
    body_bytes: int
    # Publishes sent and not yet answered, at most, per publisher: a flood is as fast as the server answers.
    window: int
    answer_timeout: float
    share: int = 0
    shares: int = 1
    # Offer the minimess.batch subprotocol.
    batch: bool = False

    @property
    def numbers(self) -> range:
        """The numbers of the messages this publisher sends."""
        return range(self.share, self.messages, self.shares)

    def for_publisher(self, share: int, shares: int) -> PublishPlan:
        """This plan's share for publisher `share` of `shares`."""
        return attrs.evolve(self, share=share, shares=shares)

    @property
    def padding(self) -> str:
        """What follows a body's send time (µs, 16 digits, and a space) to make `body_bytes`."""
        return "x" * max(0, self.body_bytes - 17)

    async def paced(self, slots: asyncio.Semaphore, report: PublishReport) -> AsyncIterator[int]:
        """This publisher's message numbers, each once its slot on the round's clock has come and
        one of `slots` (the window) is taken; the report's start is when the first could go."""
        start = time.monotonic()
        report.started = time.time()
        for number in self.numbers:
            if self.rate:
                # Each send has its own slot on the clock, so one late send does not delay the rest.
                delay = start + number / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await slots.acquire()
            yield number


def publisher_uid(share: int) -> str:
    """The uid publisher `share` connects as: the first keeps the single publisher's name."""
    return PUBLISHER_UID if share == 0 else f"{PUBLISHER_UID}-{share + 1}"


async def publish_all(url: str, plan: PublishPlan, publishers: int) -> PublishReport:
    """Publish the plan through `publishers` connections at once; their reports added up."""
    reports = await asyncio.gather(
        *(publish(url, plan.for_publisher(share, publishers)) for share in range(publishers))
    )
    return combined(reports)


def combined(reports: Sequence[PublishReport]) -> PublishReport:
    """One report for several publishers: counts added, from the first start to the last answer."""
    total = PublishReport()
    for part in reports:
        total.acked += part.acked
        total.errors.update(part.errors)
        total.unanswered += part.unanswered
        total.accept_us.extend(part.accept_us)
    total.started = min((part.started for part in reports), default=0.0)
    total.finished = max((part.finished for part in reports), default=0.0)
    return total


async def publish(url: str, plan: PublishPlan) -> PublishReport:
    """Publish the plan through a server at `url` and wait for every ack or error."""
    report = PublishReport()
    numbers = plan.numbers
    uid = publisher_uid(plan.share)
    async with connect(
        f"{url}/subscribe/id:{uid}", compression=None, max_queue=None, subprotocols=frames.offered(plan.batch)
    ) as connection:
        await connection.recv()  # `success`
        slots = asyncio.Semaphore(plan.window)
        all_answered = asyncio.Event()
        reader = asyncio.create_task(_read_answers(connection, len(numbers), slots, all_answered, report))
        if not numbers:
            all_answered.set()
        # The body starts with the send time (µs) so that subscribers can time it without --trace.
        padding = plan.padding
        async for number in plan.paced(slots, report):
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
        report.unanswered = len(numbers) - report.acked - report.errors.total()
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
            for document in frames.documents(data):
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
