"""The client side of the wire: a connection to a minimess server that comes back by itself."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections import deque
from typing import Any

import attrs
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from minimess.adapters.websocket_client.backoff import Backoff
from minimess.adapters.wire import client_frames
from minimess.adapters.wire.paths import subscribe_path
from minimess.adapters.wire.server_frames import message_from_document
from minimess.app.chat_client import LinkEvents
from minimess.domain.errors import MinimessError
from minimess.domain.model import Topic, Uid

log = structlog.get_logger(__name__)

GOING_AWAY = 1001


@attrs.frozen
class _Sub:
    topic: Topic
    ref: str


@attrs.frozen
class _Unsub:
    topic: Topic
    ref: str


@attrs.define
class _Pub:
    topic: Topic
    body: str
    ref: str = ""
    # Fires when the ack is overdue; set once the frame is on its way.
    timer: asyncio.TimerHandle | None = None


class ServerLink:
    """Keeps one WebSocket connection to a minimess server up, and the user's topics on it.

    After every (re)connect the topics go in the URL, so the server has resubscribed them before
    its `success` frame; only then are the lines typed while disconnected sent, in order. Every
    publish is tracked by its ref until its ack: a refusal, a missing ack past `ack_timeout`, or
    a connection lost before the ack is reported, never dropped silently.
    """

    def __init__(
        self,
        server_url: str,
        uid: Uid,
        topics: tuple[Topic, ...],
        backoff: Backoff,
        ack_timeout: float,
        queue_size: int,
        open_timeout: float = 10.0,
    ) -> None:
        self._base_url = server_url.rstrip("/")
        self._uid = uid
        # The topics the user wants, in the order they asked; resubscribed on every connect.
        self._topics: dict[Topic, None] = dict.fromkeys(topics)
        self._backoff = backoff
        self._ack_timeout = ack_timeout
        self._queue_size = queue_size
        self._open_timeout = open_timeout
        # Frames not sent yet; publishes stay across reconnects, sub/unsub are only for this
        # connection (the URL of the next one carries the topics). At most queue_size publishes.
        self._outgoing: deque[_Sub | _Unsub | _Pub] = deque()
        # Publishes sent and waiting for their ack, by ref.
        self._awaiting: dict[str, _Pub] = {}
        # sub requests sent, by ref, so that a refusal can name its topic.
        self._requests: dict[str, _Sub | _Unsub] = {}
        self._refs = itertools.count(1)
        self._connection: ClientConnection | None = None
        self._events: LinkEvents | None = None
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()

    @property
    def topics(self) -> tuple[Topic, ...]:
        return tuple(self._topics)

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    def subscribe(self, topic: Topic) -> None:
        self._topics[topic] = None
        if self.is_connected:
            self._send_later(_Sub(topic, self._next_ref()))

    def unsubscribe(self, topic: Topic) -> None:
        self._topics.pop(topic, None)
        if self.is_connected:
            self._send_later(_Unsub(topic, self._next_ref()))

    def publish(self, topic: Topic, body: str) -> bool:
        if sum(isinstance(item, _Pub) for item in self._outgoing) >= self._queue_size:
            return False
        self._send_later(_Pub(topic, body))
        return True

    def close(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._connection is not None:
            asyncio.get_running_loop().create_task(self._connection.close())

    async def run(self, events: LinkEvents) -> None:
        self._events = events
        while not self._closing.is_set():
            try:
                reason = await self._connect_and_serve(events)
            finally:
                self._connection = None
                self._lose_awaiting(events)
            if self._closing.is_set():
                return
            delay = self._backoff.next_delay()
            events.disconnected(reason, delay)
            try:
                async with asyncio.timeout(delay):
                    await self._closing.wait()
            except TimeoutError:
                pass

    async def _connect_and_serve(self, events: LinkEvents) -> str:
        """Connect once and serve the connection until it ends; why it ended, for the user."""
        # The server subscribes what the URL names; what changes during the handshake is sent after.
        url_topics = self.topics
        try:
            async with connect(
                self._url(url_topics), open_timeout=self._open_timeout, close_timeout=2, max_size=2**20
            ) as connection:
                async with asyncio.timeout(self._open_timeout):
                    greeting = await connection.recv()
                if not _is_success(greeting):
                    return "the server did not greet with success"
                if self._closing.is_set():
                    return "closed"
                self._backoff.reset()
                self._connection = connection
                self._resume(url_topics)
                events.connected(_node(greeting), self.topics)
                sender = asyncio.create_task(self._send_loop(connection))
                try:
                    async for data in connection:
                        self._on_frame(data, events)
                finally:
                    sender.cancel()
        except ConnectionClosed as closed:
            return _close_reason(closed)
        except InvalidStatus as error:
            return f"the server refused the connection: HTTP {error.response.status_code}"
        except (OSError, InvalidHandshake, TimeoutError) as error:
            return f"cannot reach {self._base_url}: {_describe(error)}"
        return _close_reason_of(connection)

    async def _send_loop(self, connection: ClientConnection) -> None:
        # A dropped connection ends sending quietly: the receiving side sees it too and reports it.
        with contextlib.suppress(ConnectionClosed):
            await self._send_all(connection)

    async def _send_all(self, connection: ClientConnection) -> None:
        while True:
            while self._outgoing:
                item = self._outgoing.popleft()
                if isinstance(item, _Pub):
                    item.ref = self._next_ref()
                    # Tracked before it is sent, so that no ack can arrive for an unknown ref.
                    self._awaiting[item.ref] = item
                    item.timer = asyncio.get_running_loop().call_later(
                        self._ack_timeout, self._ack_overdue, item.ref
                    )
                    frame: client_frames.ClientFrame = client_frames.Pub(item.topic, item.body, item.ref)
                elif isinstance(item, _Sub):
                    self._requests[item.ref] = item
                    frame = client_frames.Sub(item.topic, item.ref)
                else:
                    self._requests[item.ref] = item
                    frame = client_frames.Unsub(item.topic, item.ref)
                await connection.send(client_frames.client_frame_text(frame))
            self._wake.clear()
            await self._wake.wait()

    def _on_frame(self, data: str | bytes, events: LinkEvents) -> None:
        try:
            document: dict[str, Any] = json.loads(data)
            kind = document["type"]
            if kind == "message":
                events.received(message_from_document(document))
            elif kind == "ack":
                self._settle(document.get("ref"))
            elif kind == "error":
                self._on_error(document, events)
            elif kind == "subscribed":
                topic = Topic(document["topic"])
                self._forget_request(_Sub, topic)
                events.subscribed(topic)
            elif kind == "unsubscribed":
                topic = Topic(document["topic"])
                self._forget_request(_Unsub, topic)
                events.unsubscribed(topic)
            elif kind == "time":
                events.ticked(str(document["ts"]))
        except (ValueError, KeyError, TypeError, MinimessError) as error:
            log.warning("server_frame_unreadable", error=str(error))

    def _on_error(self, document: dict[str, Any], events: LinkEvents) -> None:
        ref, reason = document.get("ref"), f"{document.get('code')}: {document.get('reason')}"
        request = self._requests.pop(str(ref), None)
        if (publish := self._settle(ref)) is not None:
            events.publish_failed(publish.topic, publish.body, reason)
        elif isinstance(request, _Sub):
            self._topics.pop(request.topic, None)
            events.refused(f"cannot subscribe to {request.topic}", reason)
        else:
            events.refused("the server says", reason)

    def _forget_request(self, kind: type[_Sub | _Unsub], topic: Topic) -> None:
        """The server answered the oldest request of this kind for `topic` (answers carry no ref)."""
        for ref, request in self._requests.items():
            if isinstance(request, kind) and request.topic == topic:
                del self._requests[ref]
                return

    def _settle(self, ref: object) -> _Pub | None:
        """Stop waiting for `ref`'s ack; the publish it belonged to, if it was still waiting."""
        publish = self._awaiting.pop(str(ref), None)
        if publish is not None and publish.timer is not None:
            publish.timer.cancel()
        return publish

    def _ack_overdue(self, ref: str) -> None:
        publish = self._awaiting.pop(ref, None)
        if publish is not None and self._events is not None:
            self._events.publish_failed(publish.topic, publish.body, f"no ack within {self._ack_timeout:g} s")

    def _lose_awaiting(self, events: LinkEvents) -> None:
        for ref in list(self._awaiting):
            publish = self._settle(ref)
            assert publish is not None
            events.publish_failed(
                publish.topic, publish.body, "connection lost before the ack; it may not have arrived"
            )
        self._requests.clear()

    def _send_later(self, item: _Sub | _Unsub | _Pub) -> None:
        self._outgoing.append(item)
        self._wake.set()

    def _next_ref(self) -> str:
        return f"c-{next(self._refs)}"

    def _resume(self, url_topics: tuple[Topic, ...]) -> None:
        """Queue, ahead of the waiting publishes, the sub/unsub that the URL did not cover."""
        publishes = [item for item in self._outgoing if isinstance(item, _Pub)]
        changes: list[_Sub | _Unsub | _Pub] = [
            _Sub(topic, self._next_ref()) for topic in self._topics if topic not in url_topics
        ]
        changes += [_Unsub(topic, self._next_ref()) for topic in url_topics if topic not in self._topics]
        self._outgoing = deque([*changes, *publishes])
        self._wake.set()

    def _url(self, topics: tuple[Topic, ...]) -> str:
        return self._base_url + subscribe_path(self._uid, topics)


def _is_success(greeting: str | bytes) -> bool:
    try:
        document = json.loads(greeting)
    except ValueError:
        return False
    return isinstance(document, dict) and document.get("type") == "success"


def _node(greeting: str | bytes) -> str:
    return str(json.loads(greeting).get("node", "?"))


def _close_reason(closed: ConnectionClosed) -> str:
    if closed.rcvd is None:
        return "connection lost"
    if closed.rcvd.code == GOING_AWAY:
        return "the server is going away"
    return f"closed by the server: {closed.rcvd.code} {closed.rcvd.reason}".rstrip()


def _close_reason_of(connection: ClientConnection) -> str:
    if connection.close_code is None:
        return "connection lost"
    if connection.close_code == GOING_AWAY:
        return "the server is going away"
    return f"closed by the server: {connection.close_code} {connection.close_reason or ''}".rstrip()


def _describe(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
