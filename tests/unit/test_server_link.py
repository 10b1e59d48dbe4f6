"""ServerLink against a scripted WebSocket server in this event loop: URL, acks, failures, reconnects."""

# Like test_connection_failure, this module uses loopback sockets: the link's rules are about a
# live connection. The server is a script rather than minimess's own, so that a test decides
# when it greets, what it acknowledges and when it drops the connection.

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from minimess.adapters.websocket import codec
from minimess.adapters.websocket.backoff import Backoff
from minimess.adapters.websocket.client import ServerLink
from minimess.domain.model import Message, Topic, Uid
from tests.timeouts import scaled

UID = Uid("afrozalm")
NEWS = Topic("news")
SPORT = Topic("sport")
CHAT = Topic("afrozalm:mala:zorfa")
LOST = "connection lost before the ack; it may not have arrived"

Document = dict[str, Any]
Reply = Callable[[ServerConnection, Document], Awaitable[None]]


class Changes:
    """One event set whenever the server or the link reports anything, so a test can wait for it."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def next(self) -> None:
        self._event.clear()
        await self._event.wait()


async def ack_pubs(connection: ServerConnection, document: Document) -> None:
    """What a minimess server does with a good pub: acknowledge its ref."""
    if document["type"] == "pub":
        await connection.send(json.dumps({"type": "ack", "ref": document.get("ref"), "id": "m-1"}))


async def ignore(_connection: ServerConnection, _document: Document) -> None:
    """Acknowledge nothing."""


class ScriptedServer:
    """Greets each connection with `success` (when allowed), records what arrives, replies as told."""

    def __init__(self, changes: Changes) -> None:
        self._changes = changes
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

    async def send(self, document: Document) -> None:
        """Send `document` on the latest connection."""
        await self.connections[-1].send(json.dumps(document))

    async def round_trip(self) -> None:
        """Ping the latest connection and wait for its pong: whatever the client sent before is in."""
        async with asyncio.timeout(scaled(5)):
            await (await self.connections[-1].ping())

    def _record(self, kind: str, item: Any) -> None:
        self.timeline.append((kind, item))
        self._changes.notify()

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
        try:
            async for data in connection:
                document = json.loads(data)
                self._record("frame", document)
                await self.reply(connection, document)
        except ConnectionClosed:
            pass


class RecordingEvents:
    """LinkEvents that keeps every report, in order, as (kind, arguments)."""

    def __init__(self, changes: Changes) -> None:
        self._changes = changes
        self.reports: list[tuple[str, tuple[Any, ...]]] = []

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [arguments for what, arguments in self.reports if what == kind]

    def kinds(self) -> list[str]:
        return [what for what, _ in self.reports]

    def _record(self, kind: str, *arguments: Any) -> None:
        self.reports.append((kind, arguments))
        self._changes.notify()

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
        self.changes = Changes()
        self.server = ScriptedServer(self.changes)
        self.events = RecordingEvents(self.changes)
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
        self.task.add_done_callback(lambda _task: self.changes.notify())

    async def start(self, topics: tuple[Topic, ...] = (), **options: Any) -> ServerLink:
        """Make a link with `options`, run it, and wait until it is connected."""
        self.make_link(topics, **options)
        self.run()
        await self.until(lambda: self.link.is_connected, "the link to connect")
        return self.link

    async def until(self, predicate: Callable[[], bool], what: str, *, after_run: bool = False) -> None:
        """Wait, with a scaled timeout, until `predicate` holds; fail at once if run() ended, unless
        `after_run` says that it may have."""
        try:
            async with asyncio.timeout(scaled(5)):
                while not predicate():
                    if self.task is not None and self.task.done() and not after_run:
                        raise AssertionError(f"run() ended while waiting for {what}: {self.task!r}")
                    await self.changes.next()
        except TimeoutError:
            raise AssertionError(
                f"timed out waiting for {what}\nlink reported: {self.events.reports}\n"
                f"server saw: {self.server.timeline}"
            ) from None

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

    async def run_ends(self) -> None:
        """Wait until run() has returned, and re-raise what it raised."""
        assert self.task is not None
        try:
            async with asyncio.timeout(scaled(5)):
                await asyncio.shield(self.task)
        except TimeoutError:
            raise AssertionError(f"run() did not end; link reported: {self.events.reports}") from None


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


def _free_port() -> int:
    """A loopback port nothing listens on (just released by the OS)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_the_topics_are_in_the_url_path(harness: Harness) -> None:
    """The link connects to /subscribe/id:<uid>/topic:<t>..., its topics in the order given."""
    await harness.start((NEWS, CHAT))
    assert harness.server.paths == ["/subscribe/id:afrozalm/topic:news/topic:afrozalm:mala:zorfa"]
    assert harness.events.of("connected") == [("unit:1", (NEWS, CHAT))]


async def test_a_trailing_slash_on_the_server_url_is_ignored(harness: Harness) -> None:
    """ws://host:port/ and ws://host:port lead to the same path."""
    await harness.start((NEWS,), url=harness.server.url + "/")
    assert harness.server.paths == ["/subscribe/id:afrozalm/topic:news"]


async def test_publishes_are_sent_in_order_with_refs_and_settled_by_acks(harness: Harness) -> None:
    """Each publish is a pub frame with a fresh ref, in order; acknowledged ones are never reported."""
    server = harness.server

    async def ack_all_but_the_last(connection: ServerConnection, document: Document) -> None:
        if document.get("body") != "unacked":
            await ack_pubs(connection, document)

    server.reply = ack_all_but_the_last
    link = await harness.start((NEWS,), ack_timeout=0.2)
    for body in ("one", "two", "three"):
        assert link.publish(NEWS, body)
    link.publish(CHAT, "unacked")
    await harness.until(lambda: len(server.frames("pub")) == 4, "four pub frames")

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
    # The acked publishes' timers were due first: had they not been cancelled, they would be here too.
    await harness.until(lambda: bool(harness.events.of("publish_failed")), "the unacked publish to fail")
    assert harness.events.of("publish_failed") == [(CHAT, "unacked", "no ack within 0.2 s")]


async def test_an_error_frame_with_the_ref_reports_publish_failed(harness: Harness) -> None:
    """An `error` naming a publish's ref reports that publish as failed, with code and reason."""
    server = harness.server

    async def refuse(connection: ServerConnection, document: Document) -> None:
        if document["type"] == "pub":
            error = {"type": "error", "code": "rate_limited", "reason": "slow down", "ref": document["ref"]}
            await connection.send(json.dumps(error))

    server.reply = refuse
    link = await harness.start((NEWS,), ack_timeout=0.2)
    link.publish(NEWS, "too fast")
    await harness.until(lambda: bool(harness.events.of("publish_failed")), "the refusal")
    assert harness.events.of("publish_failed") == [(NEWS, "too fast", "rate_limited: slow down")]

    # Settled by the error: its ack timer is gone, so a later missing ack is the only other failure.
    server.reply = ignore
    link.publish(NEWS, "later")
    await harness.until(lambda: len(harness.events.of("publish_failed")) == 2, "the later publish to fail")
    assert harness.events.of("publish_failed")[1] == (NEWS, "later", "no ack within 0.2 s")
    assert "refused" not in harness.events.kinds()


async def test_no_ack_within_the_ack_timeout_reports_publish_failed(harness: Harness) -> None:
    """A publish the server never acknowledges is reported once its ack_timeout has passed."""
    harness.server.reply = ignore
    link = await harness.start((NEWS,), ack_timeout=0.2)
    link.publish(NEWS, "into the void")
    await harness.until(lambda: bool(harness.events.of("publish_failed")), "the overdue ack")
    assert harness.events.of("publish_failed") == [(NEWS, "into the void", "no ack within 0.2 s")]
    assert link.is_connected


async def test_a_late_ack_after_the_timeout_is_ignored(harness: Harness) -> None:
    """An ack arriving after the publish was reported as failed changes nothing and breaks nothing."""
    server = harness.server
    server.reply = ignore
    link = await harness.start((NEWS,), ack_timeout=0.2)
    link.publish(NEWS, "slow")
    await harness.until(lambda: bool(harness.events.of("publish_failed")), "the overdue ack")
    (pub,) = server.frames("pub")
    await server.send({"type": "ack", "ref": pub["ref"], "id": "m-1"})
    await server.send({"type": "time", "ts": "2026-11-28T03:55:13.123Z"})
    await harness.until(lambda: bool(harness.events.of("ticked")), "the tick after the late ack")
    assert len(harness.events.of("publish_failed")) == 1
    assert link.is_connected


async def test_a_connection_closed_before_the_ack_reports_publish_failed(harness: Harness) -> None:
    """A publish sent on a connection that dies before its ack is reported, then the disconnect."""
    server = harness.server

    async def die(connection: ServerConnection, document: Document) -> None:
        if document["type"] == "pub":
            connection.transport.abort()

    server.reply = die
    link = await harness.start((NEWS,))
    link.publish(NEWS, "last words")
    await harness.until(lambda: bool(harness.events.of("disconnected")), "the disconnect")
    assert harness.events.of("publish_failed") == [(NEWS, "last words", LOST)]
    assert harness.events.kinds()[-2:] == ["publish_failed", "disconnected"]
    (reason, _delay) = harness.events.of("disconnected")[0]
    assert reason == "connection lost"

    # It was sent once and reported: the next connection does not send it again.
    server.reply = ack_pubs
    await harness.until(lambda: link.is_connected, "the reconnect")
    link.publish(NEWS, "back")
    await harness.until(lambda: "back" in server.bodies(), "the next publish")
    assert server.bodies() == ["last words", "back"]


async def test_a_publish_queued_while_the_server_is_down_is_sent_after_the_success_frame(
    idle: Harness,
) -> None:
    """Lines queued while no server listens go out, in order, on the next connection, after `success`."""
    harness, server, port = idle, idle.server, _free_port()
    link = harness.make_link((NEWS,), url=f"ws://127.0.0.1:{port}")
    harness.run()
    await harness.until(lambda: bool(harness.events.of("disconnected")), "the failed first attempt")
    reason, _ = harness.events.of("disconnected")[0]
    assert reason == f"cannot reach ws://127.0.0.1:{port}: connection refused"
    assert not link.is_connected
    assert link.publish(NEWS, "one")
    assert link.publish(NEWS, "two")

    server.may_greet.clear()
    await server.start(port)
    await harness.until(lambda: bool(server.paths), "the server to be reached")
    await server.round_trip()
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
    """After the server goes away (1001) the link reconnects with its topics and sends what was queued."""
    server = harness.server
    link = await harness.start((NEWS,))
    link.subscribe(SPORT)
    link.unsubscribe(NEWS)
    await harness.until(lambda: len(server.frames()) == 2, "the sub and unsub frames")
    assert [(d["type"], d["topic"]) for d in server.frames()] == [("sub", "sport"), ("unsub", "news")]
    assert all(d["ref"] for d in server.frames())

    port = server.port
    await server.stop()
    await harness.until(lambda: bool(harness.events.of("disconnected")), "the disconnect")
    assert harness.events.of("disconnected")[0][0] == "the server is going away"
    link.subscribe(CHAT)
    assert link.publish(CHAT, "while you were out")

    await server.start(port)
    await harness.until(lambda: "while you were out" in server.bodies(), "the queued line")
    assert server.paths[-1] == "/subscribe/id:afrozalm/topic:sport/topic:afrozalm:mala:zorfa"
    assert harness.events.of("connected")[-1] == ("unit:1", (SPORT, CHAT))
    # The sub typed while down is carried by the URL, not sent again as a frame.
    assert [d["type"] for d in server.frames()] == ["sub", "unsub", "pub"]


async def test_disconnected_is_reported_with_the_backoff_delay(idle: Harness) -> None:
    """Each failed attempt reports the backoff's delay: growing, and from `first` again after a success."""
    harness, server, port = idle, idle.server, _free_port()
    bounds: list[float] = []

    def uniform(_low: float, high: float) -> float:
        bounds.append(high)
        return high / 2

    link = harness.make_link(url=f"ws://127.0.0.1:{port}", first=0.04, cap=0.16, uniform=uniform)
    harness.run()
    await harness.until(lambda: len(harness.events.of("disconnected")) >= 4, "four failed attempts")
    delays = [delay for _, delay in harness.events.of("disconnected")[:4]]
    assert delays == [0.02, 0.04, 0.08, 0.08]
    assert bounds[:4] == [0.04, 0.08, 0.16, 0.16]

    await server.start(port)
    await harness.until(lambda: link.is_connected, "the connection")
    reported = len(harness.events.of("disconnected"))
    await server.stop()
    await harness.until(
        lambda: len(harness.events.of("disconnected")) > reported, "the disconnect after the success"
    )
    assert harness.events.of("disconnected")[reported] == ("the server is going away", 0.02)


async def test_a_refused_sub_is_reported_and_the_topic_dropped(harness: Harness) -> None:
    """An `error` naming a sub's ref reports the refusal and removes the topic from the link."""
    server = harness.server

    async def refuse_subs(connection: ServerConnection, document: Document) -> None:
        if document["type"] == "sub":
            error = {
                "type": "error",
                "code": "too_many_topics",
                "reason": "at most 1",
                "ref": document["ref"],
            }
            await connection.send(json.dumps(error))

    server.reply = refuse_subs
    link = await harness.start((NEWS,))
    link.subscribe(SPORT)
    wanted = link.topics
    assert wanted == (NEWS, SPORT)
    await harness.until(lambda: bool(harness.events.of("refused")), "the refusal")
    assert harness.events.of("refused") == [("cannot subscribe to sport", "too_many_topics: at most 1")]
    assert link.topics == (NEWS,)


async def test_server_frames_are_reported_as_events(harness: Harness) -> None:
    """message, subscribed, unsubscribed, time and a ref-less error become their LinkEvents."""
    server = harness.server
    await harness.start((NEWS,))
    sent = datetime(2026, 11, 28, 3, 55, 13, 123000, tzinfo=UTC)
    await server.send(
        {
            "type": "message",
            "id": "m-9",
            "topic": "news",
            "from": "mala",
            "body": "hi\n",
            "ts": codec.format_timestamp(sent),
        }
    )
    await server.send({"type": "subscribed", "topic": "sport"})
    await server.send({"type": "unsubscribed", "topic": "sport"})
    await server.send({"type": "error", "code": "bad_frame", "reason": "nope", "ref": None})
    await server.send({"type": "time", "ts": "2026-11-28T03:55:14.000Z"})
    await harness.until(lambda: bool(harness.events.of("ticked")), "the tick")
    assert harness.events.reports[1:] == [
        ("received", (Message(id="m-9", topic=NEWS, sender=Uid("mala"), body="hi\n", timestamp=sent),)),
        ("subscribed", (SPORT,)),
        ("unsubscribed", (SPORT,)),
        ("refused", ("the server says", "bad_frame: nope")),
        ("ticked", ("2026-11-28T03:55:14.000Z",)),
    ]


async def test_an_unreadable_frame_is_skipped(harness: Harness) -> None:
    """A frame that is not JSON, or lacks its fields, is ignored and the connection goes on."""
    server = harness.server
    await harness.start((NEWS,))
    await server.connections[-1].send("not json")
    await server.send({"type": "message", "topic": "news"})
    await server.send({"type": "time", "ts": "2026-11-28T03:55:14.000Z"})
    await harness.until(lambda: bool(harness.events.of("ticked")), "the tick")
    assert harness.events.kinds() == ["connected", "ticked"]


async def test_a_greeting_other_than_success_is_a_failed_attempt(harness: Harness) -> None:
    """A server that does not start with `success` is reported and retried, not trusted."""
    harness.server.greeting = json.dumps({"type": "hello"})
    harness.make_link((NEWS,))
    harness.run()
    await harness.until(lambda: bool(harness.events.of("disconnected")), "the failed attempt")
    assert harness.events.of("disconnected")[0][0] == "the server did not greet with success"
    assert "connected" not in harness.events.kinds()


async def test_a_greeting_that_is_not_json_is_a_failed_attempt_too(harness: Harness) -> None:
    """A first frame that is not JSON at all (not a minimess server) is retried, and run() goes on."""
    harness.server.greeting = "Welcome to some other WebSocket service"
    harness.make_link((NEWS,))
    harness.run()
    await harness.until(lambda: len(harness.events.of("disconnected")) >= 2, "two failed attempts")
    assert harness.events.of("disconnected")[0][0] == "the server did not greet with success"


async def test_a_full_queue_refuses_a_publish_while_disconnected(idle: Harness) -> None:
    """Past queue_size unsent lines, publish returns False and keeps nothing more."""
    link = idle.make_link(url=f"ws://127.0.0.1:{_free_port()}", queue_size=2)
    assert link.publish(NEWS, "one")
    assert link.publish(NEWS, "two")
    assert not link.publish(NEWS, "three")
    assert not link.is_connected


async def test_close_ends_run_while_connected(harness: Harness) -> None:
    """close() on a live connection ends run() without reporting a disconnect."""
    link = await harness.start((NEWS,))
    link.close()
    await harness.run_ends()
    assert not link.is_connected
    assert "disconnected" not in harness.events.kinds()
    await harness.until(
        lambda: ("closed", 1000) in harness.server.timeline, "the close handshake", after_run=True
    )


async def test_close_ends_run_while_waiting_to_retry(idle: Harness) -> None:
    """close() during the backoff delay ends run() at once, not after the delay."""
    harness = idle
    link = harness.make_link(url=f"ws://127.0.0.1:{_free_port()}", first=3600, cap=3600)
    harness.run()
    await harness.until(lambda: bool(harness.events.of("disconnected")), "the failed attempt")
    link.close()
    await harness.run_ends()


async def test_close_before_run_means_run_returns_at_once(idle: Harness) -> None:
    """A link closed before it ran does not connect at all."""
    harness = idle
    link = harness.make_link(url=f"ws://127.0.0.1:{_free_port()}")
    link.close()
    harness.run()
    await harness.run_ends()
    assert harness.events.reports == []


async def test_close_ends_run_while_waiting_for_the_greeting(harness: Harness) -> None:
    """close() while the server has not greeted yet ends run(), even if the greeting comes later."""
    server = harness.server
    server.may_greet.clear()
    link = harness.make_link((NEWS,))
    harness.run()
    await harness.until(lambda: bool(server.paths), "the connection attempt")
    link.close()
    server.may_greet.set()
    await harness.run_ends()
    assert not link.is_connected


async def test_a_sub_typed_while_the_greeting_is_awaited_reaches_the_server(harness: Harness) -> None:
    """A topic subscribed after the URL was sent but before `success` still gets subscribed."""
    server = harness.server
    server.may_greet.clear()
    link = harness.make_link((NEWS,))
    harness.run()
    await harness.until(lambda: bool(server.paths), "the connection attempt")
    link.subscribe(SPORT)
    server.may_greet.set()
    await harness.until(lambda: link.is_connected, "the connection")
    link.publish(NEWS, "marker")
    await harness.until(lambda: "marker" in server.bodies(), "the marker publish")
    subscribed = "topic:sport" in server.paths[-1] or any(
        d["type"] == "sub" and d["topic"] == "sport" for d in server.frames()
    )
    assert subscribed, f"the server never heard of sport: {server.timeline}"


async def test_an_unsub_typed_while_the_greeting_is_awaited_reaches_the_server(harness: Harness) -> None:
    """A topic unsubscribed after the URL was sent but before `success` still gets unsubscribed."""
    server = harness.server
    server.may_greet.clear()
    link = harness.make_link((NEWS, SPORT))
    harness.run()
    await harness.until(lambda: bool(server.paths), "the connection attempt")
    link.unsubscribe(SPORT)
    server.may_greet.set()
    await harness.until(lambda: link.is_connected, "the connection")
    link.publish(NEWS, "marker")
    await harness.until(lambda: "marker" in server.bodies(), "the marker publish")
    unsubscribed = "topic:sport" not in server.paths[-1] or any(
        d["type"] == "unsub" and d["topic"] == "sport" for d in server.frames()
    )
    assert unsubscribed, f"the server still has sport: {server.timeline}"
