"""Recording clients: each publishes with ids, resubscribes with `since` after any disconnect, and
retries a publish of unknown outcome with its id, writing down everything it does and sees."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import quote

import attrs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from benchmarks.history.records import (
    CONNECTION_LOST,
    NO_ANSWER,
    Acked,
    Connected,
    Delivered,
    Disconnected,
    Failed,
    Record,
    Sent,
    Subscribed,
)

# Answers after which the same id is sent again: the message may or may not be published.
RETRIED: Final = frozenset({"publish_timeout", CONNECTION_LOST, NO_ANSWER})


@attrs.frozen(kw_only=True)
class WorkloadSettings:
    """How the clients behave."""

    topics: tuple[str, ...] = ("t0", "t1")
    # Mean seconds between one client's publishes (drawn uniformly from 0 to twice this).
    pace: float = 0.05
    # Sends of one id at most, the first included.
    max_attempts: int = 5
    # Seconds before sending an id again.
    retry_pause: float = 0.1
    # Seconds a client waits for the answer to a publish before it gives the connection up.
    answer_within: float = 30.0
    # Reconnect delays: full jitter, doubling from `backoff_first` up to `backoff_cap`.
    backoff_first: float = 0.05
    backoff_cap: float = 0.5
    open_timeout: float = 10.0
    # A prefix of every message id, unique to the run.
    run: str = "run"


class Recorder:
    """The history as it is written, and a wake-up for whoever waits on what the clients report."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        # When a publish was last answered with an error (any code), for faults to wait on, and how.
        self.last_error = 0.0
        self.last_failure: Failed | None = None
        self._changed = asyncio.Event()

    def add(self, record: Record) -> None:
        self.records.append(record)
        if isinstance(record, Failed):
            self.last_error = record.at
            self.last_failure = record
        self.notify()

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, condition: Callable[[], bool], within: float, what: Callable[[], str]) -> None:
        """Wait until `condition` holds, checked whenever anything is recorded; TimeoutError with what()."""
        try:
            async with asyncio.timeout(within):
                while not condition():
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"not within {within:g} s: {what()}") from None


@attrs.define
class _Publish:
    """One message to publish: its id, and how often it was sent."""

    topic: str
    id: str
    attempts: int = 0
    # Whether an attempt ended with the outcome unknown.
    unknown: bool = False


class Client:
    """One recording client, connecting to `url` (a proxy or a server) again whenever it loses it."""

    def __init__(
        self, name: str, url: str, settings: WorkloadSettings, recorder: Recorder, seed: int
    ) -> None:
        self.name = name
        self._url = url
        self._settings = settings
        self._recorder = recorder
        self._random = random.Random(seed)
        # Where each topic stands for this client: the last message it got, or where it subscribed.
        self.positions: dict[str, tuple[str, int]] = {}
        # The server of the open connection, and the topics it has answered `subscribed` for.
        self.node: str | None = None
        self.subscribed: set[str] = set()
        self.acks = 0
        self.connections = 0
        self._retries: deque[_Publish] = deque()
        self._in_flight: _Publish | None = None
        # The ref of the attempt under way, and what its answer sets.
        self._ref = ""
        self._answered_event = asyncio.Event()
        # When each topic's position last moved to another epoch.
        self.epoch_changed: dict[str, float] = {}
        self._sequence = 0
        self._refs = 0
        self.publishing = True
        self._closing = asyncio.Event()
        self._connection: ClientConnection | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        """Connected and subscribed to every topic."""
        return self.node is not None and self.subscribed.issuperset(self._settings.topics)

    @property
    def idle(self) -> bool:
        """No publish under way or waiting to be sent again."""
        return self._in_flight is None and not self._retries

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"client-{self.name}")
        self.task.add_done_callback(lambda _: self._recorder.notify())

    def stop_publishing(self) -> None:
        """Publish nothing new; what is to be sent again still is."""
        self.publishing = False
        self._recorder.notify()

    async def close(self) -> None:
        self._closing.set()
        if self._connection is not None:
            await self._connection.close()
        if self.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.task), self._settings.open_timeout)
            except TimeoutError:
                self.task.cancel()

    def _record(self, record: Record) -> None:
        self._recorder.add(record)

    async def _run(self) -> None:
        delay_bound = self._settings.backoff_first
        while not self._closing.is_set():
            reason = "closed"
            try:
                async with connect(
                    self._url + self._path(),
                    open_timeout=self._settings.open_timeout,
                    close_timeout=2,
                    max_size=None,
                ) as connection:
                    self._connection = connection
                    success = json.loads(await connection.recv())
                    if success.get("type") != "success":
                        raise RuntimeError(f"first frame {success!r}")
                    self.connections += 1
                    self.node = str(success["node"])
                    self._record(Connected(self.name, time.monotonic(), self.node))
                    delay_bound = self._settings.backoff_first
                    await self._session(connection, set(success.get("topics", ())))
            except ConnectionClosed as closed:
                reason = f"closed {closed.rcvd.code if closed.rcvd else 'without a close frame'}"
            except (OSError, TimeoutError, WebSocketException) as error:
                reason = f"{type(error).__name__}: {error}"
            finally:
                self._connection = None
                self.node = None
                self.subscribed.clear()
                self._lost_in_flight()
                self._record(Disconnected(self.name, time.monotonic(), reason))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._random.uniform(0, delay_bound))
            delay_bound = min(delay_bound * 2, self._settings.backoff_cap)

    def _path(self) -> str:
        """Every other connection names the topics it knows a position of in its URL, with `since`."""
        path = f"/subscribe/id:{self.name}"
        if self.connections % 2 == 1:
            for topic, (epoch, offset) in self.positions.items():
                path += f"/topic:{topic}@{quote(epoch, safe='')}:{offset}"
        return path

    async def _session(self, connection: ClientConnection, in_url: set[str]) -> None:
        for topic in self._settings.topics:
            if topic in in_url:
                continue  # answered by `subscribed` all the same, since the URL gave its position
            frame: dict[str, Any] = {"type": "sub", "topic": topic, "ref": f"sub-{topic}"}
            if topic in self.positions:
                epoch, offset = self.positions[topic]
                frame["since"] = {"epoch": epoch, "offset": offset}
            await connection.send(json.dumps(frame))
        tasks = {
            asyncio.create_task(self._read_loop(connection)),
            asyncio.create_task(self._publish_loop(connection)),
        }
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await task
        errors = [error for task in done if (error := task.exception()) is not None]
        if errors:
            raise errors[0]

    async def _read_loop(self, connection: ClientConnection) -> None:
        async for data in connection:
            self._read(json.loads(data))

    def _read(self, frame: dict[str, Any]) -> None:
        now = time.monotonic()
        kind = frame.get("type")
        if kind == "message":
            topic = frame["topic"]
            self._record(Delivered(self.name, now, topic, frame["id"], frame["epoch"], frame["offset"]))
            self._advance(topic, frame["epoch"], frame["offset"], now)
        elif kind == "subscribed":
            topic = frame["topic"]
            recovered = frame.get("recovered")
            self._record(Subscribed(self.name, now, topic, frame["epoch"], frame["offset"], recovered))
            self.subscribed.add(topic)
            if recovered is not True:
                # Nothing from before comes: from here on, this is where the topic stands.
                self._advance(topic, frame["epoch"], frame["offset"], now, jump=True)
        # An error without a ref (rate_limited) answers the frame under way: the only one.
        elif (
            kind in ("ack", "error") and self._in_flight is not None and frame.get("ref") in (self._ref, None)
        ):
            self._answered(self._in_flight, frame, now)

    def _advance(
        self, topic: str, epoch: str | None, offset: int | None, now: float, jump: bool = False
    ) -> None:
        if epoch is None or offset is None:
            return
        current = self.positions.get(topic)
        if current is None or current[0] != epoch or offset > current[1] or jump:
            if current is not None and current[0] != epoch:
                self.epoch_changed[topic] = now
            self.positions[topic] = (epoch, offset)

    async def _publish_loop(self, connection: ClientConnection) -> None:
        settings = self._settings
        while True:
            if self._retries:
                await asyncio.sleep(settings.retry_pause)
                publish = self._retries.popleft()
            elif self.publishing:
                await asyncio.sleep(self._random.uniform(0, 2 * settings.pace))
                if not self.publishing:
                    continue
                self._sequence += 1
                topic = self._random.choice(settings.topics)
                publish = _Publish(topic, f"{settings.run}-{self.name}-{self._sequence:07d}")
            else:
                await self._closing.wait()
                return
            await self._send(connection, publish)

    async def _send(self, connection: ClientConnection, publish: _Publish) -> None:
        """Send one attempt and wait for its answer, which the reader records."""
        publish.attempts += 1
        self._refs += 1
        self._ref = f"pub-{self._refs}"
        self._in_flight = publish
        answered = self._answered_event = asyncio.Event()
        frame = {"type": "pub", "topic": publish.topic, "body": f"{publish.id} #{publish.attempts}"}
        self._record(Sent(self.name, time.monotonic(), publish.topic, publish.id, publish.attempts))
        await connection.send(json.dumps({**frame, "ref": self._ref, "id": publish.id}))
        try:
            await asyncio.wait_for(answered.wait(), self._settings.answer_within)
        except TimeoutError:
            self._unanswered(publish, NO_ANSWER)
            await connection.close(1000, "no answer to a publish")

    def _answered(self, publish: _Publish, answer: dict[str, Any], now: float) -> None:
        self._in_flight = None
        self._answered_event.set()
        if answer["type"] == "ack":
            self.acks += 1
            self._record(Acked(self.name, now, publish.topic, publish.id, answer["epoch"], answer["offset"]))
            return
        code = str(answer.get("code"))
        self._record(Failed(self.name, now, publish.topic, publish.id, code, str(answer.get("reason", ""))))
        # broker_unavailable after an unknown outcome leaves it unknown: that is sent again too.
        if code in RETRIED or (publish.unknown and code == "broker_unavailable"):
            publish.unknown = True
            if publish.attempts < self._settings.max_attempts:
                self._retries.append(publish)

    def _unanswered(self, publish: _Publish, code: str) -> None:
        """The attempt under way ended without an answer: record it, and send the id again later."""
        self._in_flight = None
        self._record(Failed(self.name, time.monotonic(), publish.topic, publish.id, code))
        publish.unknown = True
        if publish.attempts < self._settings.max_attempts:
            self._retries.appendleft(publish)

    def _lost_in_flight(self) -> None:
        if self._in_flight is not None:
            self._unanswered(self._in_flight, CONNECTION_LOST)


class Workload:
    """`count` clients on `url`: started together, stopped from publishing together, closed together."""

    def __init__(self, url: str, count: int, settings: WorkloadSettings, seed: int = 0) -> None:
        self.settings = settings
        self.recorder = Recorder()
        self.clients = [
            Client(f"c{number:02d}", url, settings, self.recorder, seed * 1000 + number)
            for number in range(count)
        ]

    def start(self) -> None:
        for client in self.clients:
            client.start()

    async def until(self, condition: Callable[[], bool], within: float, what: Callable[[], str]) -> None:
        await self.recorder.until(condition, within, what)

    async def until_ready(self, within: float, acks: int = 1) -> None:
        """Until every client is connected, subscribed to every topic, and has `acks` more acks than now."""
        wanted = {client: client.acks + acks for client in self.clients}

        def short() -> list[str]:
            return [c.name for c in self.clients if not c.ready or c.acks < wanted[c]]

        def what() -> str:
            failure = self.recorder.last_failure
            last = "none" if failure is None else f"{failure.code} ({failure.reason}) to {failure.client}"
            return f"not ready with {acks} more acks: {short()}; last publish error: {last}"

        await self.until(lambda: not short(), within, what)

    def on(self, node: str) -> list[Client]:
        return [client for client in self.clients if client.node == node]

    async def drain(self, within: float) -> None:
        """Stop publishing; wait until every publish has its answer, then until every client has every
        topic up to the last acked offset (in the newest epoch an ack named)."""
        for client in self.clients:
            client.stop_publishing()
        await self.until(
            lambda: all(client.idle for client in self.clients),
            within,
            lambda: f"publishes under way: {[c.name for c in self.clients if not c.idle]}",
        )
        tops = self._tops()
        await self.until(
            lambda: not self.behind(tops),
            within,
            lambda: f"behind {tops}: {[(c.name, c.positions) for c in self.behind(tops)]}",
        )

    def _tops(self) -> dict[str, tuple[str, int, float]]:
        """Per topic, the highest acked position in the newest epoch an ack named, and when."""
        tops: dict[str, tuple[str, int, float]] = {}
        for record in self.recorder.records:
            if isinstance(record, Acked) and record.epoch is not None and record.offset is not None:
                top = tops.get(record.topic)
                if top is None or top[0] != record.epoch or record.offset > top[1]:
                    tops[record.topic] = (record.epoch, record.offset, record.at)
        return tops

    def behind(self, tops: dict[str, tuple[str, int, float]]) -> list[Client]:
        return [client for client in self.clients if not self._reached(client, tops)]

    @staticmethod
    def _reached(client: Client, tops: dict[str, tuple[str, int, float]]) -> bool:
        """Whether the client has every topic up to its top, or has left the top's epoch since."""
        for topic, (epoch, offset, at) in tops.items():
            position = client.positions.get(topic)
            if position is None:
                return False
            if position[0] == epoch and position[1] < offset:
                return False
            if position[0] != epoch and client.epoch_changed.get(topic, 0.0) < at:
                return False
        return client.ready

    async def close(self) -> None:
        await asyncio.gather(*(client.close() for client in self.clients), return_exceptions=True)
