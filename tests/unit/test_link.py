"""ServerLink against a scripted WebSocket server in this event loop: URL, acks, failures, reconnects."""

# The link's rules are about a live connection, hence loopback sockets. The server is a script
# rather than minimess's own, so that a test decides when it greets, what it acknowledges and
# when it drops the connection.

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from devtools.processes import free_port
from minimess.adapters.websocket_client.backoff import Backoff
from minimess.adapters.websocket_client.link import ServerLink
from minimess.adapters.wire.paths import subscribe_path
from minimess.domain.model import Message, Topic, Uid
from tests.timeouts import scaled

UID = Uid("afrozalm")
NEWS = Topic("news")
SPORT = Topic("sport")
CHAT = Topic("afrozalm:mala:zorfa")
LOST = "connection lost before the ack; it may not have arrived"
TICK = {"type": "time", "ts": "2026-11-28T03:55:14.000Z"}

Document = dict[str, Any]
Reply = Callable[[ServerConnection, Document], Awaitable[None]]


async def ack_pubs(connection: ServerConnection, document: Document) -> None:
    """What a minimess server does with a good pub."""
    if document["type"] == "pub":
        await connection.send(json.dumps({"type": "ack", "ref": document["ref"], "id": "m-1"}))


async def ignore(_connection: ServerConnection, _document: Document) -> None:
    pass


def refuse(kind: str, code: str, reason: str) -> Reply:
    """Answer every frame of `kind` with an error naming its ref."""

    async def reply(connection: ServerConnection, document: Document) -> None:
        if document["type"] == kind:
            error = {"type": "error", "code": code, "reason": reason, "ref": document["ref"]}
            await connection.send(json.dumps(error))

    return reply


class ScriptedServer:
    """Greets each connection with `success` (when allowed), records what arrives, replies as told."""

    def __init__(self, notify: Callable[[], None]) -> None:
        self._notify = notify
        self.port = 0
        # ("connected", path), ("greeted", path), ("frame", document) and ("closed", close code),
        # in the order they happened.
        self.timeline: list[tuple[str, Any]] = []
        self.connections: list[ServerConnection] = []
        # Cleared by a test to hold the `success` frame back.
        self.may_greet = asyncio.Event()
        self.may_greet.set()
        self.greeting = json.dumps({"type": "success", "uid": UID.value, "node": "unit:1", "topics": []})
        self.reply: Reply = ack_pubs
        self._server: Server | None = None

    async def start(self, port: int = 0) -> None:
        self._server = await serve(self._handle, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close every connection with 1001 (going away) and stop listening."""
        if self._server is not None:
            self._server.close()
            async with asyncio.timeout(scaled(10)):
                await self._server.wait_closed()
            self._server = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def paths(self) -> list[str]:
        return [path for kind, path in self.timeline if kind == "connected"]

    def frames(self, kind: str | None = None) -> list[Document]:
        documents = [item for what, item in self.timeline if what == "frame"]
        return [d for d in documents if kind is None or d["type"] == kind]

    def bodies(self) -> list[str]:
        return [document["body"] for document in self.frames("pub")]

    async def send(self, document: Document | str) -> None:
        """Send `document` on the latest connection."""
        await self.connections[-1].send(document if isinstance(document, str) else json.dumps(document))

    def _record(self, kind: str, item: Any) -> None:
        self.timeline.append((kind, item))
        self._notify()

    async def _handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        path = connection.request.path
        self.connections.append(connection)
        self._record("connected", path)
        # Read from the start, so that a frame sent before the greeting would be seen as such.
        reader = asyncio.create_task(self._read(connection))
        allowed = asyncio.create_task(self.may_greet.wait())
        await asyncio.wait([reader, allowed], return_when=asyncio.FIRST_COMPLETED)
        allowed.cancel()
        if not reader.done():
            # Recorded before sending: the client may answer before send() returns.
            self._record("greeted", path)
            with contextlib.suppress(ConnectionClosed):
                await connection.send(self.greeting)
        await reader
        self._record("closed", connection.close_code)

    async def _read(self, connection: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for data in connection:
                document = json.loads(data)
                self._record("frame", document)
                await self.reply(connection, document)


class RecordingEvents:
    """LinkEvents that keeps every report, in order, as (kind, arguments)."""

    def __init__(self, notify: Callable[[], None]) -> None:
        self._notify = notify
        self.reports: list[tuple[str, tuple[Any, ...]]] = []

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [arguments for what, arguments in self.reports if what == kind]

    def kinds(self) -> list[str]:
        return [what for what, _ in self.reports]

    def _record(self, kind: str, *arguments: Any) -> None:
        self.reports.append((kind, arguments))
        self._notify()

    def connected(self, node: str, topics: tuple[Topic, ...]) -> None:
        self._record("connected", node, topics)

    def disconnected(self, reason: str, retry_in: float) -> None:
        self._record("disconnected", reason, retry_in)

    def received(self, message: Message) -> None:
        self._record("received", message)

    def subscribed(self, topic: Topic) -> None:
        self._record("subscribed", topic)

    def unsubscribed(self, topic: Topic) -> None:
        self._record("unsubscribed", topic)

    def refused(self, what: str, reason: str) -> None:
        self._record("refused", what, reason)

    def publish_failed(self, topic: Topic, body: str, reason: str) -> None:
        self._record("publish_failed", topic, body, reason)

    def ticked(self, timestamp: str) -> None:
        self._record("ticked", timestamp)


class Harness:
    """A scripted server, one ServerLink running against it, and what the link reported."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self.server = ScriptedServer(self._changed.set)
        self.events = RecordingEvents(self._changed.set)
        self.task: asyncio.Task[None] | None = None
        self._link: ServerLink | None = None

    @property
    def link(self) -> ServerLink:
        assert self._link is not None
        return self._link

    def make_link(
        self,
        topics: tuple[Topic, ...] = (),
        *,
        url: str | None = None,
        first: float = 0.05,
        cap: float = 0.05,
        uniform: Callable[[float, float], float] = lambda _low, high: high,
        ack_timeout: float = 10.0,
        queue_size: int = 100,
    ) -> ServerLink:
        """A link to the server (or `url`), not running yet; reconnects after `first` seconds by default."""
        self._link = ServerLink(
            url or self.server.url,
            UID,
            topics,
            Backoff(first, cap, uniform=uniform),
            ack_timeout=ack_timeout,
            queue_size=queue_size,
            open_timeout=scaled(10),
        )
        return self._link

    def run(self) -> None:
        self.task = asyncio.create_task(self.link.run(self.events))
        self.task.add_done_callback(lambda _task: self._changed.set())

    async def start(self, topics: tuple[Topic, ...] = (), **options: Any) -> ServerLink:
        """Make a link with `options`, run it, and wait until it is connected."""
        self.make_link(topics, **options)
        self.run()
        await self.until(lambda: self.link.is_connected, "the link to connect")
        return self.link

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        """Wait until `predicate` holds; fail at once if run() ended."""
        try:
            async with asyncio.timeout(scaled(5)):
                while not predicate():
                    if self.task is not None and self.task.done():
                        raise AssertionError(f"run() ended while waiting for {what}: {self.task!r}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"timed out waiting for {what}\nlink reported: {self.events.reports}\n"
                f"server saw: {self.server.timeline}"
            ) from None

    async def reported(self, kind: str, count: int = 1) -> list[tuple[Any, ...]]:
        """Wait until the link has reported `count` events of `kind`; all of that kind so far."""
        await self.until(lambda: len(self.events.of(kind)) >= count, f"{count} {kind} report(s)")
        return self.events.of(kind)

    async def run_ends(self) -> None:
        """Wait until run() has returned, and re-raise what it raised."""
        assert self.task is not None
        try:
            async with asyncio.timeout(scaled(5)):
                await asyncio.shield(self.task)
        except TimeoutError:
            raise AssertionError(f"run() did not end; link reported: {self.events.reports}") from None

    async def stop(self) -> None:
        """Close the link, cancel run() if that did not end it, and stop the server."""
        if self.task is not None:
            self.link.close()
            _, pending = await asyncio.wait([self.task], timeout=scaled(5))
            for task in pending:
                task.cancel()
            # Retrieves what run() raised, so that it is not logged again when the task is collected.
            await asyncio.gather(self.task, return_exceptions=True)
        await self.server.stop()


@pytest.fixture
async def idle() -> AsyncIterator[Harness]:
    """A harness whose server is not listening yet; afterwards link and server are stopped."""
    harness = Harness()
    try:
        yield harness
    finally:
        await harness.stop()


@pytest.fixture
async def harness(idle: Harness) -> Harness:
    """A harness whose scripted server listens on a free loopback port."""
    await idle.server.start()
    return idle


@pytest.mark.parametrize("suffix", ["", "/"])
async def test_the_link_connects_with_its_topics_in_the_url_in_order(harness: Harness, suffix: str) -> None:
    await harness.start((NEWS, CHAT), url=harness.server.url + suffix)
    assert harness.server.paths == [subscribe_path(UID, (NEWS, CHAT))]
    assert harness.events.of("connected") == [("unit:1", (NEWS, CHAT))]


async def test_publishes_go_in_order_with_fresh_refs_and_only_an_unacked_one_is_reported(
    harness: Harness,
) -> None:
    """After ack_timeout; an ack coming later changes nothing, and the link stays connected."""
    server = harness.server

    async def ack_all_but_the_last(connection: ServerConnection, document: Document) -> None:
        if document.get("body") != "unacked":
            await ack_pubs(connection, document)

    server.reply = ack_all_but_the_last
    link = await harness.start((NEWS,), ack_timeout=0.2)
    for body in ("one", "two", "three"):
        assert link.publish(NEWS, body)
    link.publish(CHAT, "unacked")
    # The acked publishes' timers were due first: had they not been cancelled, they would be here too.
    assert await harness.reported("publish_failed") == [(CHAT, "unacked", "no ack within 0.2 s")]
    pubs = server.frames("pub")
    assert [(d["topic"], d["body"]) for d in pubs] == [
        ("news", "one"),
        ("news", "two"),
        ("news", "three"),
        ("afrozalm:mala:zorfa", "unacked"),
    ]
    refs = [d["ref"] for d in pubs]
    assert all(isinstance(ref, str) and ref for ref in refs)
    assert len(set(refs)) == 4
    await server.send({"type": "ack", "ref": refs[-1], "id": "m-4"})
    await server.send(TICK)
    await harness.reported("ticked")
    assert len(harness.events.of("publish_failed")) == 1
    assert link.is_connected


async def test_an_error_naming_a_publishs_ref_reports_it_failed_and_settles_it(harness: Harness) -> None:
    """Settled: no `no ack` report follows for it."""
    server = harness.server
    server.reply = refuse("pub", "rate_limited", "slow down")
    link = await harness.start((NEWS,), ack_timeout=0.2)
    link.publish(NEWS, "too fast")
    assert await harness.reported("publish_failed") == [(NEWS, "too fast", "rate_limited: slow down")]
    server.reply = ignore
    link.publish(NEWS, "later")
    failures = await harness.reported("publish_failed", 2)
    assert failures[1:] == [(NEWS, "later", "no ack within 0.2 s")]
    assert "refused" not in harness.events.kinds()


async def test_a_publish_whose_connection_dies_before_the_ack_is_reported_and_not_sent_again(
    harness: Harness,
) -> None:
    """Reported before the disconnect."""
    server = harness.server

    async def die(connection: ServerConnection, document: Document) -> None:
        if document["type"] == "pub":
            connection.transport.abort()

    server.reply = die
    link = await harness.start((NEWS,))
    link.publish(NEWS, "last words")
    ((reason, _delay),) = await harness.reported("disconnected")
    assert reason == "connection lost"
    assert harness.events.of("publish_failed") == [(NEWS, "last words", LOST)]
    assert harness.events.kinds()[-2:] == ["publish_failed", "disconnected"]

    server.reply = ack_pubs
    await harness.until(lambda: link.is_connected, "the reconnect")
    link.publish(NEWS, "back")
    await harness.until(lambda: "back" in server.bodies(), "the next publish")
    assert server.bodies() == ["last words", "back"]


async def test_lines_queued_while_no_server_listens_go_out_in_order_after_the_next_success(
    idle: Harness,
) -> None:
    harness, server, port = idle, idle.server, free_port()
    link = harness.make_link((NEWS,), url=f"ws://127.0.0.1:{port}")
    harness.run()
    ((reason, _),) = await harness.reported("disconnected")
    assert reason == f"cannot reach ws://127.0.0.1:{port}: connection refused"
    assert not link.is_connected
    assert link.publish(NEWS, "one")
    assert link.publish(NEWS, "two")

    server.may_greet.clear()
    await server.start(port)
    await harness.until(lambda: bool(server.paths), "the server to be reached")
    async with asyncio.timeout(scaled(5)):
        # A ping's pong comes after whatever the link sent before it.
        await (await server.connections[-1].ping())
    assert server.frames() == []
    assert not link.is_connected
    server.may_greet.set()

    await harness.until(lambda: len(server.frames("pub")) == 2, "the queued lines")
    assert [kind for kind, _ in server.timeline] == ["connected", "greeted", "frame", "frame"]
    assert server.bodies() == ["one", "two"]
    assert harness.events.of("connected") == [("unit:1", (NEWS,))]


async def test_a_restarted_server_gets_the_current_topics_and_the_lines_typed_meanwhile(
    harness: Harness,
) -> None:
    server = harness.server
    link = await harness.start((NEWS,))
    link.subscribe(SPORT)
    link.unsubscribe(NEWS)
    await harness.until(lambda: len(server.frames()) == 2, "the sub and unsub frames")
    assert [(d["type"], d["topic"]) for d in server.frames()] == [("sub", "sport"), ("unsub", "news")]
    assert all(d["ref"] for d in server.frames())

    port = server.port
    await server.stop()
    ((reason, _),) = await harness.reported("disconnected")
    assert reason == "the server is going away"
    link.subscribe(CHAT)
    assert link.publish(CHAT, "while you were out")

    await server.start(port)
    await harness.until(lambda: "while you were out" in server.bodies(), "the queued line")
    assert server.paths[-1] == subscribe_path(UID, (SPORT, CHAT))
    assert harness.events.of("connected")[-1] == ("unit:1", (SPORT, CHAT))
    # The sub typed while down is carried by the URL, not sent again as a frame.
    assert [d["type"] for d in server.frames()] == ["sub", "unsub", "pub"]


async def test_each_failed_attempt_reports_the_backoffs_delay_which_a_success_resets(idle: Harness) -> None:
    harness, server, port = idle, idle.server, free_port()
    link = harness.make_link(
        url=f"ws://127.0.0.1:{port}", first=0.04, cap=0.16, uniform=lambda _, high: high / 2
    )
    harness.run()
    failures = await harness.reported("disconnected", 4)
    assert [delay for _, delay in failures[:4]] == [0.02, 0.04, 0.08, 0.08]

    await server.start(port)
    await harness.until(lambda: link.is_connected, "the connection")
    count = len(harness.events.of("disconnected"))
    await server.stop()
    failures = await harness.reported("disconnected", count + 1)
    assert failures[count] == ("the server is going away", 0.02)


async def test_a_refused_sub_is_reported_and_the_topic_dropped(harness: Harness) -> None:
    harness.server.reply = refuse("sub", "too_many_topics", "at most 1")
    link = await harness.start((NEWS,))
    link.subscribe(SPORT)
    wanted = link.topics
    assert wanted == (NEWS, SPORT)
    assert await harness.reported("refused") == [("cannot subscribe to sport", "too_many_topics: at most 1")]
    assert link.topics == (NEWS,)


async def test_server_frames_are_reported_as_their_events_and_unreadable_ones_skipped(
    harness: Harness,
) -> None:
    """A ref-less error is a refusal of its own."""
    server = harness.server
    await harness.start((NEWS,))
    sent = datetime(2026, 11, 28, 3, 55, 13, 123000, tzinfo=UTC)
    frames: list[Document | str] = [
        "not json",
        {"type": "message", "topic": "news"},
        {
            "type": "message",
            "id": "m-9",
            "topic": "news",
            "from": "mala",
            "body": "hi\n",
            "ts": "2026-11-28T03:55:13.123Z",
        },
        {"type": "subscribed", "topic": "sport"},
        {"type": "unsubscribed", "topic": "sport"},
        {"type": "error", "code": "bad_frame", "reason": "nope", "ref": None},
        TICK,
    ]
    for frame in frames:
        await server.send(frame)
    await harness.reported("ticked")
    assert harness.events.reports[1:] == [
        ("received", (Message(id="m-9", topic=NEWS, sender=Uid("mala"), body="hi\n", timestamp=sent),)),
        ("subscribed", (SPORT,)),
        ("unsubscribed", (SPORT,)),
        ("refused", ("the server says", "bad_frame: nope")),
        ("ticked", (TICK["ts"],)),
    ]


@pytest.mark.parametrize("greeting", [json.dumps({"type": "hello"}), "Welcome to another WebSocket service"])
async def test_a_server_that_does_not_greet_with_success_is_not_trusted_and_retried(
    harness: Harness, greeting: str
) -> None:
    harness.server.greeting = greeting
    harness.make_link((NEWS,))
    harness.run()
    failures = await harness.reported("disconnected", 2)
    assert {reason for reason, _ in failures} == {"the server did not greet with success"}
    assert "connected" not in harness.events.kinds()


async def test_past_queue_size_unsent_lines_publish_refuses_and_keeps_nothing(idle: Harness) -> None:
    link = idle.make_link(url=f"ws://127.0.0.1:{free_port()}", queue_size=2)
    assert [link.publish(NEWS, body) for body in ("one", "two", "three")] == [True, True, False]


async def test_close_ends_run_while_connected_with_a_close_handshake_and_no_disconnect_report(
    harness: Harness,
) -> None:
    link = await harness.start((NEWS,))
    link.close()
    await harness.run_ends()
    assert not link.is_connected
    assert "disconnected" not in harness.events.kinds()
    async with asyncio.timeout(scaled(5)):
        await harness.server.connections[-1].wait_closed()
    assert harness.server.connections[-1].close_code == 1000


@pytest.mark.parametrize("when", ["before-run", "waiting-to-retry"])
async def test_close_ends_run_at_once_before_it_ran_or_while_it_waits_to_retry(
    idle: Harness, when: str
) -> None:
    link = idle.make_link(url=f"ws://127.0.0.1:{free_port()}", first=3600, cap=3600)
    if when == "before-run":
        link.close()
    idle.run()
    if when == "waiting-to-retry":
        await idle.reported("disconnected")
        link.close()
    await idle.run_ends()
    assert "connected" not in idle.events.kinds()


async def test_close_ends_run_while_the_greeting_is_awaited_even_if_it_comes_later(harness: Harness) -> None:
    server = harness.server
    server.may_greet.clear()
    link = harness.make_link((NEWS,))
    harness.run()
    await harness.until(lambda: bool(server.paths), "the connection attempt")
    link.close()
    server.may_greet.set()
    await harness.run_ends()
    assert not link.is_connected


@pytest.mark.parametrize("change", ["subscribe", "unsubscribe"])
async def test_a_topic_changed_while_the_greeting_is_awaited_is_changed_on_the_server(
    harness: Harness, change: str
) -> None:
    """The URL was sent before the change, so the change follows as a frame."""
    server = harness.server
    server.may_greet.clear()
    link = harness.make_link((NEWS,) if change == "subscribe" else (NEWS, SPORT))
    harness.run()
    await harness.until(lambda: bool(server.paths), "the connection attempt")
    getattr(link, change)(SPORT)
    server.may_greet.set()
    await harness.until(lambda: link.is_connected, "the connection")
    link.publish(NEWS, "marker")
    await harness.until(lambda: "marker" in server.bodies(), "the marker publish")
    kind = "sub" if change == "subscribe" else "unsub"
    assert [(d["type"], d["topic"]) for d in server.frames()] == [(kind, "sport"), ("pub", "news")]
