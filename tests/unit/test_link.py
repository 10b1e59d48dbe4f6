"""ServerLink against a scripted WebSocket server in this event loop: URL, acks, failures, reconnects,
recovery, duplicates and retried publishes."""

# The link's rules are about a live connection, hence loopback sockets. The server is a script
# rather than minimess's own, so that a test decides when it greets, what it acknowledges and
# when it drops the connection.

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from devtools.processes import free_port
from minimess.adapters.websocket_client.backoff import Backoff
from minimess.adapters.websocket_client.link import MAX_ATTEMPTS, MAX_SENT_FRAME, ServerLink
from minimess.adapters.wire.paths import subscribe_path
from minimess.domain.errors import ServerRefused
from minimess.domain.model import Message, Position, Topic, Uid
from tests.timeouts import scaled

UID = Uid("afrozalm")
NEWS = Topic("news")
SPORT = Topic("sport")
CHAT = Topic("afrozalm:mala:zorfa")
TICK = {"type": "time", "ts": "2026-11-28T03:55:14.000Z"}
EPOCH = "mem-0123456789abcdef"
# The ack timeout of tests in which some publishes are acked and others run out of attempts: long
# enough that an ack from this process's own server is never late on a busy machine.
ACK_TIMEOUT = 1.0

Document = dict[str, Any]
Reply = Callable[[ServerConnection, Document], Awaitable[None]]


async def ack_pubs(connection: ServerConnection, document: Document) -> None:
    """What a minimess server does with a good pub."""
    if document["type"] == "pub":
        await connection.send(json.dumps({"type": "ack", "ref": document["ref"], "id": "m-1"}))


async def ignore(_connection: ServerConnection, _document: Document) -> None:
    pass


def answer_subs(epoch: str, offset: int) -> Reply:
    """Answer every sub with `subscribed` at (epoch, offset), as a server whose log stands there; ack pubs."""

    async def reply(connection: ServerConnection, document: Document) -> None:
        if document["type"] == "sub":
            await connection.send(json.dumps(subscribed(document["topic"], epoch, offset)))
        await ack_pubs(connection, document)

    return reply


def subscribed(topic: str, epoch: str | None, offset: int | None, **recovered: bool) -> Document:
    return {"type": "subscribed", "topic": topic, "epoch": epoch, "offset": offset, **recovered}


def message(offset: int, epoch: str = EPOCH, topic: str = "news") -> Document:
    """A message frame at (epoch, offset), whose body names its position."""
    return {
        "type": "message",
        "id": f"id-{epoch}-{offset}",
        "topic": topic,
        "from": "mala",
        "body": f"{epoch}:{offset}",
        "ts": "2026-11-28T03:55:13.123Z",
        "offset": offset,
        "epoch": epoch,
    }


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

    def published(self, topic: Topic, body: str) -> None:
        self._record("published", topic, body)

    def ticked(self, timestamp: str) -> None:
        self._record("ticked", timestamp)

    def missed(self, topic: Topic) -> None:
        self._record("missed", topic)

    def received_bodies(self) -> list[str]:
        return [message.body for (message,) in self.of("received")]


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
        open_timeout: float = 10.0,
    ) -> ServerLink:
        """A link to the server (or `url`), not running yet; reconnects after `first` seconds by default."""
        self._link = ServerLink(
            url or self.server.url,
            UID,
            topics,
            Backoff(first, cap, uniform=uniform),
            ack_timeout=ack_timeout,
            queue_size=queue_size,
            open_timeout=scaled(open_timeout),
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


async def test_publishes_go_in_order_with_ids_and_an_unacked_one_is_retried_then_reported(
    harness: Harness,
) -> None:
    """Every attempt gets a fresh ref and an ack timer of its own, and carries the publish's id;
    after MAX_ATTEMPTS it is reported. An ack coming later changes nothing; the link stays connected."""
    server = harness.server

    async def ack_all_but_the_last(connection: ServerConnection, document: Document) -> None:
        if document.get("body") != "unacked":
            await ack_pubs(connection, document)

    server.reply = ack_all_but_the_last
    link = await harness.start((NEWS,), ack_timeout=ACK_TIMEOUT)
    for body in ("one", "two", "three"):
        assert link.publish(NEWS, body)
    link.publish(CHAT, "unacked")
    # The acked publishes' timers were due first: had they not been cancelled, they would be here too.
    assert await harness.reported("publish_failed") == [
        (
            CHAT,
            "unacked",
            f"no ack within {ACK_TIMEOUT:g} s, after 3 attempts; it may or may not have arrived",
        )
    ]
    pubs = server.frames("pub")
    assert [(d["topic"], d["body"]) for d in pubs] == [
        ("news", "one"),
        ("news", "two"),
        ("news", "three"),
        *[("afrozalm:mala:zorfa", "unacked")] * MAX_ATTEMPTS,
    ]
    refs = [d["ref"] for d in pubs]
    assert all(isinstance(ref, str) and ref for ref in refs)
    assert len(set(refs)) == len(refs)
    ids = [d["id"] for d in pubs]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{16,64}", message_id) for message_id in ids)
    assert len(set(ids[:4])) == 4
    assert set(ids[3:]) == {ids[3]}
    await server.send({"type": "ack", "ref": refs[-1], "id": "m-4"})
    await server.send(TICK)
    await harness.reported("ticked")
    assert len(harness.events.of("publish_failed")) == 1
    assert link.is_connected


async def test_an_error_naming_a_publishs_ref_reports_it_failed_and_settles_it(harness: Harness) -> None:
    """Settled: no `no ack` report follows for it."""
    server = harness.server
    server.reply = refuse("pub", "rate_limited", "slow down")
    link = await harness.start((NEWS,), ack_timeout=ACK_TIMEOUT)
    link.publish(NEWS, "too fast")
    assert await harness.reported("publish_failed") == [(NEWS, "too fast", "rate_limited: slow down")]
    server.reply = ignore
    link.publish(NEWS, "later")
    failures = await harness.reported("publish_failed", 2)
    assert failures[1:] == [
        (NEWS, "later", f"no ack within {ACK_TIMEOUT:g} s, after 3 attempts; it may or may not have arrived")
    ]
    assert "refused" not in harness.events.kinds()


async def test_a_publish_whose_connection_dies_before_the_ack_is_sent_again_with_its_id_first(
    harness: Harness,
) -> None:
    """After the reconnect, ahead of what was typed meanwhile; acked then, it is never reported."""
    server = harness.server

    async def die_once(connection: ServerConnection, document: Document) -> None:
        if document["type"] == "pub":
            server.reply = ack_pubs
            server.may_greet.clear()
            connection.transport.abort()

    server.reply = die_once
    link = await harness.start((NEWS,), ack_timeout=ACK_TIMEOUT)
    link.publish(NEWS, "last words")
    ((reason, _delay),) = await harness.reported("disconnected")
    assert reason == "connection lost"
    link.publish(NEWS, "typed meanwhile")
    await harness.until(lambda: len(server.paths) == 2, "the reconnect attempt")
    server.may_greet.set()
    await harness.until(lambda: len(server.bodies()) == 3, "the publishes after the reconnect")
    pubs = server.frames("pub")
    assert [d["body"] for d in pubs] == ["last words", "last words", "typed meanwhile"]
    assert pubs[0]["id"] == pubs[1]["id"] != pubs[2]["id"]
    assert pubs[0]["ref"] != pubs[1]["ref"]
    # A publish never acked fails after MAX_ATTEMPTS ack timeouts; by then those acked would have.
    server.reply = ignore
    link.publish(NEWS, "marker")
    failures = await harness.reported("publish_failed")
    assert [body for _topic, body, _reason in failures] == ["marker"]


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
    assert [kind for kind, _ in server.timeline] == ["connected", "greeted", "frame", "frame", "frame"]
    # First the quiet sub that asks where news starts (the fake never answers it), then the lines.
    assert [(d["type"], d["topic"]) for d in server.frames()[:1]] == [("sub", "news")]
    assert server.bodies() == ["one", "two"]
    assert harness.events.of("connected") == [("unit:1", (NEWS,))]


async def test_a_topic_subscribed_during_the_handshake_is_reported_subscribed_once_when_answered(
    idle: Harness,
) -> None:
    """Not as if the URL had subscribed it: connected names the URL's topics, its answer the new one."""
    harness, server = idle, idle.server
    server.may_greet.clear()
    await server.start()
    link = harness.make_link((NEWS,))
    harness.run()
    await harness.until(lambda: bool(server.paths), "the handshake")
    link.subscribe(SPORT)
    server.may_greet.set()
    await harness.until(lambda: bool(server.frames("sub")), "the sub frames")
    await harness.until(
        lambda: any(d["topic"] == "sport" for d in server.frames("sub")), "the sub frame of sport"
    )
    assert harness.events.of("connected") == [("unit:1", (NEWS,))]
    await server.send({"type": "subscribed", "topic": "sport"})
    assert await harness.reported("subscribed") == [(SPORT,)]


async def test_a_restarted_server_gets_the_current_topics_and_the_lines_typed_meanwhile(
    harness: Harness,
) -> None:
    server = harness.server
    link = await harness.start((NEWS,))
    link.subscribe(SPORT)
    link.unsubscribe(NEWS)
    await harness.until(lambda: len(server.frames()) == 3, "the sub and unsub frames")
    # After the quiet sub asking where news starts.
    assert [(d["type"], d["topic"]) for d in server.frames()] == [
        ("sub", "news"),
        ("sub", "sport"),
        ("unsub", "news"),
    ]
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
    # The sub typed while down is carried by the URL; the fake never answered where topics start,
    # so each gets a quiet sub asking again.
    assert [(d["type"], d["topic"]) for d in server.frames()[3:]] == [
        ("sub", "sport"),
        ("sub", CHAT.name),
        ("pub", CHAT.name),
    ]


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
    # The quiet sub for news, refused too by this fake, changes nothing: news is in the URL.
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


@pytest.mark.parametrize("hang", ["handshake", "greeting"])
async def test_close_ends_a_connection_attempt_that_hangs_at_once(harness: Harness, hang: str) -> None:
    """A server that never answers the handshake, or never greets: quitting does not wait for open_timeout."""
    silent: asyncio.Server | None = None
    if hang == "handshake":
        accepted = asyncio.Event()

        async def hold(_reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
            accepted.set()

        silent = await asyncio.start_server(hold, "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{silent.sockets[0].getsockname()[1]}"
    else:
        harness.server.may_greet.clear()
        url = harness.server.url
    link = harness.make_link((NEWS,), url=url, open_timeout=3600)
    link.publish(NEWS, "never sent")
    harness.run()
    if silent is None:
        await harness.until(lambda: bool(harness.server.paths), "the connection attempt")
    else:
        async with asyncio.timeout(scaled(5)):
            await accepted.wait()
    link.close()
    await harness.run_ends()
    assert not link.is_connected
    assert harness.events.kinds() == []
    assert link.unsent == 1
    if silent is not None:
        silent.close()


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
    # Then the quiet sub asking where news, in the URL, starts.
    assert [(d["type"], d["topic"]) for d in server.frames()] == [
        (kind, "sport"),
        ("sub", "news"),
        ("pub", "news"),
    ]


async def test_publish_timeout_sends_the_publish_again_with_its_id_until_acked_or_out_of_attempts(
    harness: Harness,
) -> None:
    """`publish_timeout` leaves the outcome unknown: the same pub again, on the same connection."""
    server = harness.server

    async def time_out(connection: ServerConnection, document: Document) -> None:
        if document["type"] != "pub":
            return
        tries = sum(d["id"] == document["id"] for d in server.frames("pub"))
        if document["body"] == "second time lucky" and tries == 2:
            await ack_pubs(connection, document)
        else:
            error = {"type": "error", "code": "publish_timeout", "reason": "Kafka", "ref": document["ref"]}
            await connection.send(json.dumps(error))

    server.reply = time_out
    link = await harness.start((NEWS,))
    link.publish(NEWS, "second time lucky")
    link.publish(NEWS, "hopeless")
    assert await harness.reported("publish_failed") == [
        (NEWS, "hopeless", "publish_timeout: Kafka, after 3 attempts; it may or may not have arrived")
    ]
    pubs = server.frames("pub")
    assert Counter(d["body"] for d in pubs) == {"second time lucky": 2, "hopeless": MAX_ATTEMPTS}
    ids = {body: {d["id"] for d in pubs if d["body"] == body} for body in ("second time lucky", "hopeless")}
    assert all(len(same) == 1 for same in ids.values()), ids
    assert len({d["ref"] for d in pubs}) == len(pubs)
    assert link.is_connected


@pytest.mark.parametrize("code", ["broker_unavailable", "id_reused"])
async def test_a_certain_refusal_of_a_publish_is_reported_at_once_and_not_retried(
    harness: Harness, code: str
) -> None:
    """`broker_unavailable`: certainly not published, and the server's broker is down: the user decides."""
    harness.server.reply = refuse("pub", code, "no")
    link = await harness.start((NEWS,))
    link.publish(NEWS, "once")
    assert await harness.reported("publish_failed") == [(NEWS, "once", f"{code}: no")]
    await harness.server.send(TICK)
    await harness.reported("ticked")
    assert harness.server.bodies() == ["once"]


async def test_after_a_reconnect_the_url_recovers_after_the_last_message_and_publishes_wait_for_it(
    harness: Harness,
) -> None:
    """A topic with a position goes in the URL with it and gets no quiet sub; a line typed while
    down is sent once the server has answered the recovery, after the replay, which is not news."""
    server = harness.server
    link = await harness.start((NEWS, SPORT))
    for offset in (4, 5):
        await server.send(message(offset))
    await harness.reported("received", 2)
    port = server.port
    await server.stop()
    await harness.reported("disconnected")
    link.publish(NEWS, "typed while down")
    before = len(server.frames())

    await server.start(port)
    await harness.until(lambda: len(harness.events.of("connected")) == 2, "the reconnect")
    assert server.paths[-1] == subscribe_path(UID, (NEWS, SPORT), {NEWS: Position(EPOCH, 5)})
    async with asyncio.timeout(scaled(5)):
        await (await server.connections[-1].ping())
    # Sport never had a position (the fake answers no sub): it is asked again, quietly.
    assert [(d["type"], d["topic"]) for d in server.frames()[before:]] == [("sub", "sport")]

    await server.send(subscribed("news", EPOCH, 7, recovered=True))
    for offset in (6, 7):
        await server.send(message(offset))
    await harness.until(lambda: "typed while down" in server.bodies(), "the line typed while down")
    await harness.reported("received", 4)
    assert harness.events.received_bodies() == [f"{EPOCH}:{offset}" for offset in (4, 5, 6, 7)]
    assert "missed" not in harness.events.kinds()
    assert "subscribed" not in harness.events.kinds()


async def test_a_message_at_or_before_the_last_one_of_its_topic_in_its_epoch_is_dropped(
    harness: Harness,
) -> None:
    """Per topic; a message of another epoch is not comparable: taken, and the change is a gap."""
    server = harness.server
    await harness.start((NEWS, SPORT))
    frames = [
        message(5),
        message(5),
        message(3),
        message(2, topic="sport"),
        message(6),
        message(1, epoch="mem-other"),
        message(1, epoch="mem-other"),
        message(2, epoch="mem-other"),
        TICK,
    ]
    for frame in frames:
        await server.send(frame)
    await harness.reported("ticked")
    assert harness.events.received_bodies() == [
        f"{EPOCH}:5",
        f"{EPOCH}:2",
        f"{EPOCH}:6",
        "mem-other:1",
        "mem-other:2",
    ]
    assert harness.events.of("missed") == [(NEWS,)]
    assert harness.events.kinds().index("missed") == harness.events.kinds().index("received") + 3


async def test_a_recovery_that_fails_is_a_gap_and_the_user_goes_on_from_where_the_answer_stands(
    harness: Harness,
) -> None:
    """`recovered: false` from a restarted server (a new epoch): `missed`, then its position is kept."""
    server = harness.server
    link = await harness.start((NEWS,))
    await server.send(message(5))
    await harness.reported("received")
    port = server.port
    await server.stop()
    await harness.reported("disconnected")

    await server.start(port)
    await harness.until(lambda: len(harness.events.of("connected")) == 2, "the reconnect")
    assert server.paths[-1] == subscribe_path(UID, (NEWS,), {NEWS: Position(EPOCH, 5)})
    for frame in [
        subscribed("news", "mem-new", 2, recovered=False),
        message(2, epoch="mem-new"),
        message(3, epoch="mem-new"),
        TICK,
    ]:
        await server.send(frame)
    await harness.reported("ticked")
    assert harness.events.of("missed") == [(NEWS,)]
    assert harness.events.received_bodies() == [f"{EPOCH}:5", "mem-new:3"]
    assert "subscribed" not in harness.events.kinds()

    await server.stop()
    await harness.reported("disconnected", 2)
    await server.start(port)
    await harness.until(lambda: len(server.paths) == 3, "the next reconnect")
    assert server.paths[-1] == subscribe_path(UID, (NEWS,), {NEWS: Position("mem-new", 3)})
    assert link.topics == (NEWS,)


async def test_a_quiet_sub_learns_where_a_url_topic_starts_so_a_reconnect_can_recover_from_there(
    harness: Harness,
) -> None:
    """Its answer is not shown; a topic the user leaves loses its position, and comes back without."""
    server = harness.server
    server.reply = answer_subs(EPOCH, 3)
    link = await harness.start((NEWS, SPORT))
    await harness.until(lambda: len(server.frames("sub")) == 2, "the quiet subs")
    link.unsubscribe(SPORT)
    await harness.until(lambda: bool(server.frames("unsub")), "the unsub")
    link.subscribe(SPORT)
    await harness.reported("subscribed")
    port = server.port
    await server.stop()
    await harness.reported("disconnected")
    link.unsubscribe(SPORT)
    link.subscribe(SPORT)

    await server.start(port)
    await harness.until(lambda: len(server.paths) == 2, "the reconnect")
    assert server.paths[-1] == subscribe_path(UID, (NEWS, SPORT), {NEWS: Position(EPOCH, 3)})
    # The sub typed while connected was answered, and shown; the quiet ones were not.
    assert harness.events.of("subscribed") == [(SPORT,)]


async def test_pending_counts_publishes_queued_or_in_flight_until_each_is_acked_and_reported(
    idle: Harness,
) -> None:
    """What quitting would lose: lines queued while no server listens, then attempts awaiting acks."""
    harness, server, port = idle, idle.server, free_port()
    link = harness.make_link((NEWS,), url=f"ws://127.0.0.1:{port}")
    harness.run()
    await harness.reported("disconnected")
    link.publish(NEWS, "one")
    link.publish(NEWS, "two")
    assert link.pending == 2
    server.reply = ignore
    await server.start(port)
    await harness.until(lambda: len(server.frames("pub")) == 2, "both lines sent")
    assert link.pending == 2
    assert harness.events.of("published") == []
    await server.send({"type": "ack", "ref": server.frames("pub")[0]["ref"], "id": "m-1"})
    assert await harness.reported("published") == [(NEWS, "one")]
    assert link.pending == 1


async def test_on_close_a_publish_sent_before_a_drop_is_reported_and_only_those_never_sent_are_unsent(
    harness: Harness,
) -> None:
    """Sent once, then the connection dropped: it may have arrived, so closing reports it rather than
    counting it with the lines never sent."""
    server = harness.server
    server.reply = ignore
    link = await harness.start((NEWS,), first=3600, cap=3600)
    link.publish(NEWS, "sent once")
    await harness.until(lambda: server.bodies() == ["sent once"], "the first line sent")
    await server.stop()
    await harness.reported("disconnected")
    link.publish(NEWS, "never sent")
    assert (link.pending, link.unsent) == (2, 1)
    link.close()
    await harness.run_ends()
    assert harness.events.of("publish_failed") == [
        (
            NEWS,
            "sent once",
            "connection lost before the ack, after 1 attempt; it may or may not have arrived",
        )
    ]
    assert (link.pending, link.unsent) == (1, 1)


async def test_a_publish_whose_message_comes_back_before_its_ack_is_published_then(harness: Harness) -> None:
    """The server delivers to subscribers before it acks: the echo, carrying the publish's id, settles it."""
    server = harness.server

    async def echo_only(connection: ServerConnection, document: Document) -> None:
        if document["type"] == "pub":
            await connection.send(json.dumps({**message(1), "id": document["id"], "body": document["body"]}))

    server.reply = echo_only
    link = await harness.start((NEWS,))
    link.publish(NEWS, "echoed")
    assert await harness.reported("published") == [(NEWS, "echoed")]
    assert link.pending == 0
    assert harness.events.kinds()[-2:] == ["received", "published"]


# --- the server's limits, retrying now, and refusals at the handshake -----------------------------


def greeting(**fields: Any) -> str:
    return json.dumps({"type": "success", "uid": UID.value, "node": "unit:1", "topics": [], **fields})


def pub_frame_bytes(body: str, ref: str) -> int:
    """The UTF-8 size of the pub frame of `body` with `ref` and a 32-hex id, as the link writes it."""
    frame = {"topic": "news", "type": "pub", "body": body, "id": "0" * 32, "ref": ref}
    return len(json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode())


async def test_before_any_success_the_limit_is_the_protocols_default_65536_bytes(idle: Harness) -> None:
    link = idle.make_link()
    # Non-ASCII counts in UTF-8 bytes: "é" is two.
    fits = "é" * ((65536 - pub_frame_bytes("", "c-" + "9" * 19)) // 2)
    assert link.oversize(NEWS, fits) is None
    assert link.oversize(NEWS, fits + "é") == (
        f"too long: {pub_frame_bytes(fits + 'é', 'c-' + '9' * 19)} bytes,"
        " the server takes at most 65536 per message frame; nothing was sent"
    )


async def test_the_limit_is_the_one_the_last_success_frame_said(harness: Harness) -> None:
    harness.server.greeting = greeting(max_message_bytes=300)
    link = await harness.start()
    assert link.oversize(NEWS, "x" * 150) is None
    reason = link.oversize(NEWS, "x" * 250)
    assert reason is not None
    assert "the server takes at most 300 per message frame; nothing was sent" in reason


async def test_a_limit_above_what_the_link_reads_back_is_capped_so_the_echo_can_arrive(
    harness: Harness,
) -> None:
    """The link reads frames of up to 1 MiB: a message it sends must come back in one it can read."""
    harness.server.greeting = greeting(max_message_bytes=2**30)
    link = await harness.start()
    assert link.oversize(NEWS, "x" * (MAX_SENT_FRAME - 200)) is None
    reason = link.oversize(NEWS, "x" * MAX_SENT_FRAME)
    assert reason is not None
    assert f"this client sends at most {MAX_SENT_FRAME} per message frame; nothing was sent" in reason


async def test_a_line_over_a_limit_lowered_since_it_was_typed_is_reported_and_never_sent(
    idle: Harness,
) -> None:
    """Typed while the limit was unknown (65536), sent to a server that takes 300: sent, it would
    close the connection with 1009, and go again after every reconnect."""
    harness, server = idle, idle.server
    server.greeting = greeting(max_message_bytes=300)
    await server.start()
    link = harness.make_link()
    assert link.publish(NEWS, "x" * 1000)
    assert link.publish(NEWS, "short")
    harness.run()
    await harness.until(lambda: server.bodies() == ["short"], "the short line")
    ((topic, body, reason),) = harness.events.of("publish_failed")
    assert (topic, body) == (NEWS, "x" * 1000)
    assert reason.startswith("too long: ")
    assert reason.endswith(" bytes, the server takes at most 300 per message frame; nothing was sent")
    assert len(server.paths) == 1


async def test_retry_now_ends_the_wait_between_attempts(idle: Harness) -> None:
    """With 30 s to wait, an attempt follows retry_now() at once."""
    harness, server, port = idle, idle.server, free_port()
    link = harness.make_link(url=f"ws://127.0.0.1:{port}", first=30, cap=30)
    link.retry_now()  # not waiting yet: nothing to end
    harness.run()
    ((_reason, delay),) = await harness.reported("disconnected")
    assert delay == 30
    await server.start(port)
    link.retry_now()
    await harness.until(lambda: link.is_connected, "the connection after retry_now")
    link.retry_now()  # connected: nothing happens
    assert len(server.paths) == 1


class RefusingServer:
    """Answers every handshake with `status` and a body whose first line is the reason."""

    def __init__(self, status: int, body: str) -> None:
        self.status = status
        self.body = body
        self.handshakes = 0
        # Set at every handshake.
        self.refused = asyncio.Event()
        self._server: Server | None = None
        self.url = ""

    async def start(self) -> None:
        def refuse(connection: ServerConnection, _request: Any) -> Any:
            self.handshakes += 1
            self.refused.set()
            return connection.respond(self.status, self.body)

        async def never(_connection: ServerConnection) -> None:
            raise AssertionError("no upgrade expected")

        self._server = await serve(never, "127.0.0.1", 0, process_request=refuse)
        self.url = f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (400, "a connection may hold at most 1 topics\n", "a connection may hold at most 1 topics"),
        (404, "no such endpoint '/x'\nmore\n", "no such endpoint '/x'"),
        (405, "", "no reason given"),
        (400, "bad \x1b[2J\u202e reason", "bad ?[2J? reason"),
    ],
)
async def test_a_4xx_at_the_handshake_ends_the_link_with_the_servers_reason_and_no_retry(
    status: int, body: str, reason: str
) -> None:
    server = RefusingServer(status, body)
    await server.start()
    try:
        events = RecordingEvents(lambda: None)
        link = ServerLink(
            server.url, UID, (), Backoff(0.01, 0.01), ack_timeout=10, queue_size=10, open_timeout=scaled(10)
        )
        with pytest.raises(ServerRefused) as refused:
            async with asyncio.timeout(scaled(5)):
                await link.run(events)
        assert str(refused.value) == (
            f"the server refused the connection: HTTP {status}: {reason};"
            " asking again would get the same answer"
        )
        assert server.handshakes == 1
        assert events.of("disconnected") == []
    finally:
        await server.stop()


@pytest.mark.parametrize("status", [408, 429, 500, 503])
async def test_a_refusal_about_load_or_time_is_retried(status: int) -> None:
    server = RefusingServer(status, "too many connections from 127.0.0.1\n")
    await server.start()
    events = RecordingEvents(lambda: None)
    link = ServerLink(
        server.url, UID, (), Backoff(0.01, 0.01), ack_timeout=10, queue_size=10, open_timeout=scaled(10)
    )
    task = asyncio.create_task(link.run(events))
    try:
        async with asyncio.timeout(scaled(5)):
            while server.handshakes < 2:
                server.refused.clear()
                await server.refused.wait()
        assert events.of("disconnected")[0][0] == (
            f"the server refused the connection: HTTP {status}: too many connections from 127.0.0.1"
        )
    finally:
        link.close()
        await asyncio.wait_for(task, scaled(5))
        await server.stop()
