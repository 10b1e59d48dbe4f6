"""The client side of the wire: a connection to a minimess server that comes back by itself."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections import deque
from typing import Any

import attrs
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from minimess.adapters.websocket_client.backoff import Backoff
from minimess.adapters.websocket_client.credentials import Credentials
from minimess.adapters.wire import client_frames
from minimess.adapters.wire.paths import subscribe_path
from minimess.adapters.wire.server_frames import message_from_document, position_from_document
from minimess.app.chat_client import LinkEvents
from minimess.domain.errors import CannotAuthenticate, MinimessError, ServerRefused
from minimess.domain.model import Message, Position, Topic, Uid

log = structlog.get_logger(__name__)

GOING_AWAY = 1001
TOKEN_EXPIRED = 4001
# Handshake answers that the same token would get again: retrying cannot help.
REFUSED_CREDENTIALS = (401, 403)
# Handshake refusals about load or time, which pass: 408 request timeout, 429 too many connections
# from one address. Any other 4xx would be the same on every attempt; 5xx and the rest are retried.
TRANSIENT_REFUSALS = (408, 429)
# Sends of one publish at most: the first, and retries while its outcome is unknown.
MAX_ATTEMPTS = 3
# The server's answer to a pub whose outcome it does not know; the same pub with the same id is safe.
PUBLISH_TIMEOUT = "publish_timeout"
# The largest client frame a server takes by default (protocol.md): the limit until a `success`
# frame says the server's own.
DEFAULT_MAX_MESSAGE_BYTES = 65536
# The largest frame the link reads; a larger one closes the connection (1009).
MAX_RECEIVED_FRAME = 2**20
# What a message frame holds besides its body, at most, with room to spare: its keys, an id of up
# to 64 characters, a topic of 128, a uid of 64, a timestamp, an offset and an epoch.
MESSAGE_ENVELOPE = 1024
# The largest pub frame the link sends whatever a server takes: its message comes back to this
# client (its topic subscribed) in a frame no larger than the pub frame plus the envelope, which
# must be one it can read, or the connection would drop at every echo.
MAX_SENT_FRAME = MAX_RECEIVED_FRAME - MESSAGE_ENVELOPE
# What oversize() assumes of the ref and id of a pub not sent yet: at least as long as any the link
# gives (refs are c-<n>; ids 32 hex digits), so that a message it lets through is not too long later.
_LONGEST_REF = "c-" + "9" * 19
_ID_SPACE = "0" * 32


@attrs.frozen
class _Sub:
    topic: Topic
    ref: str
    # Sent by the link itself, only to learn where the topic starts: its answer is not shown.
    quiet: bool = False


@attrs.frozen
class _Unsub:
    topic: Topic
    ref: str


@attrs.define(eq=False)
class _Pub:
    topic: Topic
    body: str
    # The message's id, chosen here and the same in every attempt: the server publishes it once.
    id: str
    # Attempts sent so far.
    attempts: int = 0
    # The ref of the attempt in flight; "" while none is.
    ref: str = ""
    # Fires when the ack of the attempt in flight is overdue.
    timer: asyncio.TimerHandle | None = None
    # Acked, or reported failed: nothing more is done with it.
    done: bool = False
    # Why the last attempt ended without an answer; "" while none has.
    cause: str = ""


class ServerLink:
    """Keeps one WebSocket connection to a minimess server up, and the user's topics on it.

    Topics. After every (re)connect the topics go in the URL, so the server has resubscribed them
    before its `success` frame. The link keeps, per topic, the last position it handed to the user
    (or, before any message, the position its subscription started from): a topic with one goes in
    the URL as `topic:<t>@<epoch>:<offset>`, so the server replays what came after it, or answers
    `recovered: false`, which is reported as a gap (LinkEvents.missed). A topic without one gets a
    quiet `sub` frame after `success`, whose `subscribed` answer tells where it starts; a later
    reconnect can then recover from there, or at least know that it cannot. A message at or before
    the kept position of its topic, in the same epoch, is a copy of one the user has: dropped.

    Publishes. Lines typed while disconnected are sent, in order, once the recoveries are
    answered. Every publish carries an id of its own and is tracked until its ack. One whose
    outcome is unknown (the connection dropped before the ack, no ack within `ack_timeout`, or
    `publish_timeout`) is sent again with the same id, which the server publishes at most once,
    up to MAX_ATTEMPTS sends in all; a refusal, or giving up, is reported, never dropped silently.
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
        credentials: Credentials | None = None,
    ) -> None:
        self._base_url = server_url.rstrip("/")
        self._uid = uid
        # The topics the user wants, in the order they asked; resubscribed on every connect.
        self._topics: dict[Topic, None] = dict.fromkeys(topics)
        self._backoff = backoff
        self._ack_timeout = ack_timeout
        self._queue_size = queue_size
        self._open_timeout = open_timeout
        # The token sent with every connection attempt, read again each time; none without it.
        self._credentials = Credentials() if credentials is None else credentials
        # Frames not sent yet; publishes stay across reconnects, sub/unsub are only for this
        # connection (the URL of the next one carries the topics). At most queue_size publishes,
        # besides those queued again to retry.
        self._outgoing: deque[_Sub | _Unsub | _Pub] = deque()
        # Publishes whose attempt in flight waits for its ack, by that attempt's ref, in send order.
        self._awaiting: dict[str, _Pub] = {}
        # Earlier attempts on this connection of publishes not done yet: a late ack settles them.
        self._stale: dict[str, _Pub] = {}
        # sub requests sent, by ref, so that a refusal can name its topic.
        self._requests: dict[str, _Sub | _Unsub] = {}
        # Per topic of the user's, how far the user has it: the last message handed over, or
        # where the subscription started. Only for topics in _topics.
        self._positions: dict[Topic, Position] = {}
        # The topics this connection's URL asked to recover, until the server answers each;
        # publishes wait until then.
        self._recovering: set[Topic] = set()
        self._refs = itertools.count(1)
        self._connection: ClientConnection | None = None
        self._events: LinkEvents | None = None
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        # Ends the wait between connection attempts: set by close() and retry_now().
        self._wait_over = asyncio.Event()
        # Whether run() is waiting between connection attempts.
        self._waiting = False
        # The connection attempt and its service, while run() has one: close() cancels it while
        # it is not connected (a handshake may hang for open_timeout).
        self._attempt_task: asyncio.Task[str] | None = None
        # The largest frame the server takes, in UTF-8 bytes: what the last `success` said.
        self._max_frame = DEFAULT_MAX_MESSAGE_BYTES

    @property
    def topics(self) -> tuple[Topic, ...]:
        return tuple(self._topics)

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    @property
    def pending(self) -> int:
        """Publishes not known to be published yet, queued or in flight: what closing now may lose."""
        # A publish is in one of the two at a time: an attempt takes it out of _outgoing.
        return len(self._awaiting) + sum(isinstance(item, _Pub) for item in self._outgoing)

    @property
    def unsent(self) -> int:
        """Publishes never sent: what closing now loses for certain.

        Those sent at least once are reported when run() ends (LinkEvents.publish_failed): one
        may or may not have arrived.
        """
        return sum(isinstance(item, _Pub) and item.attempts == 0 for item in self._outgoing)

    def subscribe(self, topic: Topic) -> None:
        self._topics[topic] = None
        if self.is_connected:
            self._send_later(_Sub(topic, self._next_ref()))

    def unsubscribe(self, topic: Topic) -> None:
        self._topics.pop(topic, None)
        # What comes while away was not wanted: a later subscription starts afresh, no recovery.
        self._positions.pop(topic, None)
        if self.is_connected:
            self._send_later(_Unsub(topic, self._next_ref()))

    def publish(self, topic: Topic, body: str) -> bool:
        if sum(isinstance(item, _Pub) for item in self._outgoing) >= self._queue_size:
            return False
        # uuid4().hex: 32 characters of [0-9a-f], within the protocol's [A-Za-z0-9_-]{16,64}.
        self._send_later(_Pub(topic, body, uuid.uuid4().hex))
        return True

    def oversize(self, topic: Topic, body: str) -> str | None:
        """Why a message of `body` cannot be sent: its pub frame is over the server's limit; or None."""
        frame = client_frames.Pub(topic, body, _LONGEST_REF, id=_ID_SPACE)
        reason = self._too_long(client_frames.client_frame_text(frame))
        return None if reason is None else f"{reason}; nothing was sent"

    def _too_long(self, text: str) -> str | None:
        size = len(text.encode())
        if size <= self._max_frame:
            return None
        who = "the server takes" if self._max_frame < MAX_SENT_FRAME else "this client sends"
        return f"too long: {size} bytes, {who} at most {self._max_frame} per message frame"

    def retry_now(self) -> None:
        """While waiting to reconnect, end the wait: the next attempt starts at once."""
        if self._waiting:
            self._wait_over.set()

    def close(self) -> None:
        """End run(): an open connection with a close handshake, an attempt in progress at once."""
        self._closing.set()
        self._wake.set()
        self._wait_over.set()
        if self._connection is not None:
            asyncio.get_running_loop().create_task(self._connection.close())
        elif self._attempt_task is not None:
            self._attempt_task.cancel()

    async def run(self, events: LinkEvents) -> None:
        """Connect, and reconnect whenever the connection drops, until close().

        Raises CannotAuthenticate when the server refuses the token (HTTP 401 or 403), or when
        the token file cannot be read: the same token would be refused again. Raises ServerRefused
        on any other 4xx answer to the handshake but 408 and 429: the same request would get it again.
        However it ends, every publish sent but not answered is then reported failed (it may or may
        not have arrived); those never sent stay, counted by `unsent`.
        """
        self._events = events
        try:
            await self._keep_connected(events)
        finally:
            self._abandon_retries()

    async def _keep_connected(self, events: LinkEvents) -> None:
        while not self._closing.is_set():
            self._attempt_task = asyncio.create_task(self._connect_and_serve(events))
            try:
                reason = await self._attempt_task
            except asyncio.CancelledError:
                # Cancelled by close(), unless run() itself is being cancelled: then that goes on.
                current = asyncio.current_task()
                if not self._closing.is_set() or (current is not None and current.cancelling()):
                    raise
                return
            finally:
                self._attempt_task = None
                self._connection = None
                self._connection_ended()
            if self._closing.is_set():
                return
            delay = self._backoff.next_delay()
            self._wait_over.clear()
            self._waiting = True
            events.disconnected(reason, delay)
            try:
                async with asyncio.timeout(delay):
                    await self._wait_over.wait()
            except TimeoutError:
                pass
            finally:
                self._waiting = False

    async def _connect_and_serve(self, events: LinkEvents) -> str:
        """Connect once and serve the connection until it ends; why it ended, for the user."""
        # The server subscribes what the URL names; what changes during the handshake is sent after.
        url_topics = self.topics
        since = {topic: self._positions[topic] for topic in url_topics if topic in self._positions}
        token = self._credentials.token()
        try:
            async with connect(
                self._url(url_topics, since),
                open_timeout=self._open_timeout,
                close_timeout=2,
                max_size=MAX_RECEIVED_FRAME,
                additional_headers=None if token is None else {"Authorization": f"Bearer {token}"},
            ) as connection:
                async with asyncio.timeout(self._open_timeout):
                    greeting = await connection.recv()
                if not _is_success(greeting):
                    return "the server did not greet with success"
                self._max_frame = _max_message_bytes(greeting)
                if self._closing.is_set():
                    return "closed"
                self._backoff.reset()
                self._connection = connection
                # The server answers each with `subscribed` (and the replay) before reading frames.
                self._recovering = set(since)
                self._resume(url_topics, since)
                # Only what the URL subscribed: a topic added during the handshake is still to be
                # subscribed (its `sub` is queued), and its `subscribed` answer says so once.
                events.connected(_node(greeting), tuple(t for t in url_topics if t in self._topics))
                sender = asyncio.create_task(self._send_loop(connection))
                try:
                    async for data in connection:
                        self._on_frame(data, events)
                finally:
                    sender.cancel()
        except ConnectionClosed as closed:
            return _close_reason(closed)
        except InvalidStatus as error:
            status = error.response.status_code
            body = error.response.body or b""
            if status in REFUSED_CREDENTIALS:
                raise CannotAuthenticate(_refusal(status, body, token is not None)) from None
            if 400 <= status < 500 and status not in TRANSIENT_REFUSALS:
                raise ServerRefused(
                    f"the server refused the connection: HTTP {status}: {_first_line(body)};"
                    " asking again would get the same answer"
                ) from None
            return f"the server refused the connection: HTTP {status}: {_first_line(body)}"
        except (OSError, InvalidHandshake, TimeoutError) as error:
            return f"cannot reach {self._base_url}: {_describe(error)}"
        return _close_reason_of(connection)

    async def _send_loop(self, connection: ClientConnection) -> None:
        # A dropped connection ends sending quietly: the receiving side sees it too and reports it.
        with contextlib.suppress(ConnectionClosed):
            await self._send_all(connection)

    async def _send_all(self, connection: ClientConnection) -> None:
        while True:
            # Publishes wait for the recoveries: the server would not read them before anyway,
            # and an attempt's ack timer should not run while the server is busy recovering.
            while self._outgoing and not (self._recovering and isinstance(self._outgoing[0], _Pub)):
                item = self._outgoing.popleft()
                if isinstance(item, _Pub):
                    frame: client_frames.ClientFrame = self._attempt(item)
                    if self._refused_as_too_long(item, client_frames.client_frame_text(frame)):
                        continue
                elif isinstance(item, _Sub):
                    self._requests[item.ref] = item
                    frame = client_frames.Sub(item.topic, item.ref)
                else:
                    self._requests[item.ref] = item
                    frame = client_frames.Unsub(item.topic, item.ref)
                await connection.send(client_frames.client_frame_text(frame))
            self._wake.clear()
            await self._wake.wait()

    def _refused_as_too_long(self, publish: _Pub, text: str) -> bool:
        """Whether `publish`'s frame is over this server's limit: then it is reported, and not sent.

        The limit may be lower than when the message was typed (another server, or one restarted
        with another --max-message-bytes): sent, it would close the connection with 1009, and be
        sent again after every reconnect.
        """
        reason = self._too_long(text)
        if reason is None:
            return False
        self._finish(publish)
        earlier = (
            "an earlier attempt may or may not have arrived" if publish.attempts > 1 else "nothing was sent"
        )
        if self._events is not None:
            self._events.publish_failed(publish.topic, publish.body, f"{reason}; {earlier}")
        return True

    def _attempt(self, publish: _Pub) -> client_frames.Pub:
        """Start one attempt of `publish`: a fresh ref, tracked before it is sent, and its ack timer."""
        publish.ref = self._next_ref()
        publish.attempts += 1
        # Tracked before it is sent, so that no ack can arrive for an unknown ref.
        self._awaiting[publish.ref] = publish
        publish.timer = asyncio.get_running_loop().call_later(self._ack_timeout, self._ack_overdue, publish)
        return client_frames.Pub(publish.topic, publish.body, publish.ref, id=publish.id)

    def _on_frame(self, data: str | bytes, events: LinkEvents) -> None:
        try:
            document: dict[str, Any] = json.loads(data)
            kind = document["type"]
            if kind == "message":
                message = message_from_document(document)
                if self._is_new(message):
                    events.received(message)
                self._on_echo(message.id)
            elif kind == "ack":
                self._on_ack(document.get("ref"))
            elif kind == "error":
                self._on_error(document, events)
            elif kind == "subscribed":
                self._on_subscribed(document, events)
            elif kind == "unsubscribed":
                topic = Topic(document["topic"])
                self._forget_request(_Unsub, topic)
                events.unsubscribed(topic)
            elif kind == "time":
                events.ticked(str(document["ts"]))
        except (ValueError, KeyError, TypeError, MinimessError) as error:
            log.warning("server_frame_unreadable", error=str(error))

    def _is_new(self, message: Message) -> bool:
        """Whether the user lacks `message`; if so, its position is kept as how far they have its topic."""
        position, topic = message.position, message.topic
        if position is None or topic not in self._topics:
            # Nothing to compare (a server without positions), or a topic left a moment ago.
            return True
        kept = self._positions.get(topic)
        if kept is not None and kept.epoch == position.epoch:
            if position.offset <= kept.offset:
                # A copy: a server the link moved to delivered again what another one had.
                log.debug("message_repeat_dropped", topic=str(topic), offset=position.offset)
                return False
        elif kept is not None:
            # A new log under a connection already open: what the old one still held is lost.
            self._missed(topic)
        self._positions[topic] = position
        return True

    def _on_subscribed(self, document: dict[str, Any], events: LinkEvents) -> None:
        topic = Topic(document["topic"])
        position = position_from_document(document)
        if topic in self._recovering:
            # The answer to the URL's recovery (the server answers those before any frame).
            self._recovering.discard(topic)
            if not self._recovering:
                self._wake.set()
            self._on_recovery(topic, document.get("recovered") is True, position)
            return
        request = self._forget_request(_Sub, topic)
        if position is not None and topic in self._topics:
            kept = self._positions.get(topic)
            # Messages up to `position` came before this answer; later ones follow it.
            if kept is None or kept.epoch != position.epoch or kept.offset < position.offset:
                self._positions[topic] = position
        if not (isinstance(request, _Sub) and request.quiet):
            events.subscribed(topic)

    def _on_recovery(self, topic: Topic, recovered: bool, position: Position | None) -> None:
        if topic not in self._topics:
            return  # left during the handshake; its unsub follows
        if recovered:
            # The replay follows, each message moving the kept position on: nothing to say.
            return
        # Nothing from before comes: the user goes on from where the server stands now.
        if position is None:
            self._positions.pop(topic, None)
        else:
            self._positions[topic] = position
        self._missed(topic)

    def _missed(self, topic: Topic) -> None:
        log.info("messages_may_be_missing", topic=str(topic))
        if self._events is not None:
            self._events.missed(topic)

    def _on_ack(self, ref: object) -> None:
        # An earlier attempt's ack counts as well: the message is published, with the same id.
        publish = self._awaiting.get(str(ref)) or self._stale.get(str(ref))
        if publish is not None and not publish.done:
            self._published(publish)

    def _on_echo(self, message_id: str) -> None:
        """A message with the id of one of this link's publishes came: that one is published.

        The server delivers a message to its subscribers before it acks the publish: without
        this, a user who quits on seeing their line would be told it was not sent yet.
        """
        unsettled = [*self._awaiting.values(), *(item for item in self._outgoing if isinstance(item, _Pub))]
        for publish in unsettled:
            if publish.id == message_id and not publish.done:
                self._published(publish)
                return

    def _published(self, publish: _Pub) -> None:
        self._finish(publish)
        if self._events is not None:
            self._events.published(publish.topic, publish.body)

    def _on_error(self, document: dict[str, Any], events: LinkEvents) -> None:
        ref, code = str(document.get("ref")), document.get("code")
        reason = f"{code}: {document.get('reason')}"
        request = self._requests.pop(ref, None)
        if (publish := self._awaiting.get(ref)) is not None:
            if code == PUBLISH_TIMEOUT:
                self._unanswered([publish], reason)
            else:
                # Certain: the message was not published. broker_unavailable included: the
                # server's broker is down, and sending again at once would mostly spend attempts.
                self._finish(publish)
                events.publish_failed(publish.topic, publish.body, reason)
        elif self._stale.pop(ref, None) is not None:
            pass  # an earlier attempt's refusal: the attempt in flight decides
        elif isinstance(request, _Sub) and request.quiet:
            # The URL holds the topic anyway: only where it starts stays unknown until a message.
            log.info("position_request_refused", topic=str(request.topic), reason=reason)
        elif isinstance(request, _Sub):
            self._topics.pop(request.topic, None)
            self._positions.pop(request.topic, None)
            events.refused(f"cannot subscribe to {request.topic}", reason)
        else:
            events.refused("the server says", reason)

    def _forget_request(self, kind: type[_Sub | _Unsub], topic: Topic) -> _Sub | _Unsub | None:
        """The server answered the oldest request of this kind for `topic` (answers carry no ref)."""
        for ref, request in self._requests.items():
            if isinstance(request, kind) and request.topic == topic:
                del self._requests[ref]
                return request
        return None

    def _finish(self, publish: _Pub) -> None:
        """Done with `publish` (acked or reported): forget every attempt of it, and any retry queued."""
        publish.done = True
        if publish.timer is not None:
            publish.timer.cancel()
        self._awaiting.pop(publish.ref, None)
        for ref in [ref for ref, stale in self._stale.items() if stale is publish]:
            del self._stale[ref]
        if publish in self._outgoing:
            self._outgoing.remove(publish)

    def _ack_overdue(self, publish: _Pub) -> None:
        if self._awaiting.get(publish.ref) is publish:
            self._unanswered([publish], f"no ack within {self._ack_timeout:g} s")

    def _unanswered(self, publishes: list[_Pub], cause: str) -> None:
        """The attempts in flight of `publishes` ended without an answer that settles them.

        Whether they were published is unknown: each is sent again with its id, ahead of the
        publishes not sent yet and in the order they were first sent, unless it has had its
        MAX_ATTEMPTS or the link is closing; then it is reported failed.
        """
        again: list[_Pub] = []
        for publish in publishes:
            del self._awaiting[publish.ref]
            if publish.timer is not None:
                publish.timer.cancel()
            if self._connection is not None:
                self._stale[publish.ref] = publish
            publish.ref = ""
            publish.cause = cause
            if publish.attempts < MAX_ATTEMPTS and not self._closing.is_set():
                log.info("publish_retried", topic=str(publish.topic), id=publish.id, cause=cause)
                again.append(publish)
                continue
            self._report_unknown(publish)
        self._outgoing.extendleft(reversed(again))
        if again:
            self._wake.set()

    def _abandon_retries(self) -> None:
        """run() is over: a publish queued to be sent again never will be, and is reported."""
        for item in list(self._outgoing):
            if isinstance(item, _Pub) and item.attempts > 0:
                self._outgoing.remove(item)
                self._report_unknown(item)

    def _report_unknown(self, publish: _Pub) -> None:
        """Give up on `publish`, sent and not answered: whether it was published is unknown."""
        publish.done = True
        attempts = f"{publish.attempts} attempts" if publish.attempts > 1 else "1 attempt"
        if self._events is not None:
            self._events.publish_failed(
                publish.topic,
                publish.body,
                f"{publish.cause}, after {attempts}; it may or may not have arrived",
            )

    def _connection_ended(self) -> None:
        """Forget what belonged to the connection; its publishes in flight go again on the next."""
        self._unanswered(list(self._awaiting.values()), "connection lost before the ack")
        self._stale.clear()
        self._requests.clear()
        self._recovering.clear()

    def _send_later(self, item: _Sub | _Unsub | _Pub) -> None:
        self._outgoing.append(item)
        self._wake.set()

    def _next_ref(self) -> str:
        return f"c-{next(self._refs)}"

    def _resume(self, url_topics: tuple[Topic, ...], since: dict[Topic, Position]) -> None:
        """Queue, ahead of the waiting publishes, the sub/unsub that the URL did not cover.

        And a quiet `sub` for each URL topic without a position: the server holds it already, and
        answers where it starts.
        """
        publishes = [item for item in self._outgoing if isinstance(item, _Pub)]
        changes: list[_Sub | _Unsub | _Pub] = [
            _Sub(topic, self._next_ref()) for topic in self._topics if topic not in url_topics
        ]
        changes += [_Unsub(topic, self._next_ref()) for topic in url_topics if topic not in self._topics]
        changes += [
            _Sub(topic, self._next_ref(), quiet=True)
            for topic in url_topics
            if topic in self._topics and topic not in since
        ]
        self._outgoing = deque([*changes, *publishes])
        self._wake.set()

    def _url(self, topics: tuple[Topic, ...], since: dict[Topic, Position]) -> str:
        return self._base_url + subscribe_path(self._uid, topics, since)


def _is_success(greeting: str | bytes) -> bool:
    try:
        document = json.loads(greeting)
    except ValueError:
        return False
    return isinstance(document, dict) and document.get("type") == "success"


def _node(greeting: str | bytes) -> str:
    return str(json.loads(greeting).get("node", "?"))


def _max_message_bytes(greeting: str | bytes) -> int:
    """The largest frame to send the greeting server: what it takes (the protocol's default if it does
    not say), but no more than MAX_SENT_FRAME."""
    limit = json.loads(greeting).get("max_message_bytes")
    return min(limit, MAX_SENT_FRAME) if type(limit) is int and limit > 0 else DEFAULT_MAX_MESSAGE_BYTES


def _first_line(body: bytes | bytearray) -> str:
    """The reason in a refusal's body, as the user may see it: its first line, or that it gave none."""
    lines = body.decode("utf-8", "replace").splitlines()
    # Printable ASCII only, and short: the server's reason is shown, not anything it may send.
    reason = "".join(char if " " <= char <= "~" else "?" for char in (lines[0] if lines else ""))[:200]
    return reason or "no reason given"


def _refusal(status: int, body: bytes | bytearray, sent_token: bool) -> str:
    """What the user reads when the server refuses the token: its one-line reason, and what to do."""
    reason = _first_line(body)
    if status == 401 and not sent_token:
        advice = "give a token with --token, --token-file or MINIMESS_TOKEN (see minimess token)"
    elif status == 401:
        advice = "get a fresh token (minimess token) and start the client again"
    else:
        advice = "this token does not allow this uid or these topics: use another token, uid or topics"
    return f"the server refused the token: HTTP {status}: {reason}; {advice}"


def _close_reason(closed: ConnectionClosed) -> str:
    if closed.rcvd is None:
        return "connection lost"
    if closed.rcvd.code == GOING_AWAY:
        return "the server is going away"
    if closed.rcvd.code == TOKEN_EXPIRED:
        return "the token expired"
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
