"""One client connection from handshake to close: its reader; its writer and pinger only when needed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from typing import Any, cast

import attrs
import structlog
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from minimess.adapters.websocket_server import authentication, tracing
from minimess.adapters.websocket_server.answers import Answers
from minimess.adapters.websocket_server.client_address import forwarded_for, peer_address, real_client_address
from minimess.adapters.websocket_server.closes import how_closed
from minimess.adapters.websocket_server.keepalive import KeepAlive
from minimess.adapters.websocket_server.log_context import connection_id
from minimess.adapters.websocket_server.outbound import Flusher, Outbound
from minimess.adapters.websocket_server.rate_limit import TokenBucket
from minimess.adapters.websocket_server.rate_limited_log import RateLimitedLog
from minimess.adapters.websocket_server.reset import reset
from minimess.adapters.websocket_server.settings import WebSocketSettings
from minimess.adapters.wire import batched_frames, server_frames
from minimess.adapters.wire.client_frames import ClientFrame, FrameError, Pub, Sub, Unsub, parse_client_frame
from minimess.adapters.wire.frame_ref import dropped_frame_ref
from minimess.adapters.wire.paths import SubscribeRequest
from minimess.app.messaging import MessagingService, Session, Subscribed
from minimess.app.publishing import Publishing
from minimess.app.task_groups import until_first_ends
from minimess.domain.errors import BrokerUnavailable, Forbidden, IdReused, PublishTimeout, TooManyTopics
from minimess.domain.metrics import Metrics
from minimess.domain.model import Position, Topic
from minimess.domain.permissions import Grant

log = structlog.get_logger(__name__)

GOING_AWAY = 1001
SLOW_CONSUMER = 4000
INTERNAL_ERROR = 1011
TOKEN_EXPIRED = 4001


@attrs.frozen
class Undelivered:
    """What a connection dropped at the shutdown deadline had not handed to its client."""

    # Frames its outbound path still held.
    frames: int
    # Bytes handed to the socket that were still in its write buffer.
    unsent_bytes: int

    @property
    def anything(self) -> bool:
        return self.frames > 0 or self.unsent_bytes > 0


class AcceptedConnection:
    """Runs one accepted WebSocket connection until it closes, whatever the client sends.

    Three roles with one job each: the reader turns frames into use cases, the writer drains
    the outbound queue to the socket, the pinger closes a client that stopped answering pings
    (answering the client's own pings is done by the websockets protocol as frames are read).
    Only the reader is a task of the connection's own (the handler's, with a second task to
    end it when the token expires). The writer is a task the outbound path starts while frames
    wait for the socket and that ends once they are out; the pinger is the server-wide
    keepalive loop, which pings this connection through `ping` and closes it through
    `ping_timed_out`. An idle connection holds no task and no queue of its own (see
    docs/performance.md, idle memory). When the reader ends, the connection is over; the
    session is always disconnected from the hub. A publish does not hold the reader until the
    bus answers it: it waits in the connection's Answers, which give every answer in the order
    of the frames read.
    """

    def __init__(
        self,
        connection: ServerConnection,
        request: SubscribeRequest,
        service: MessagingService,
        settings: WebSocketSettings,
        metrics: Metrics,
        node_id: str,
        flusher: Flusher,
        trace: bool = False,
        grant: Grant | None = None,
        *,
        rate_limited_log: RateLimitedLog,
        keep_alive: KeepAlive,
    ) -> None:
        self._connection = connection
        self._request = request
        self._service = service
        self._settings = settings
        self._metrics = metrics
        self._node_id = node_id
        # --trace: stage times on publishes, acks and every frame this connection writes.
        self._trace = trace
        stamps = tracing.OutboundStamps() if trace else None
        self._outbound = Outbound(
            connection,
            settings.queue_size,
            self._close_slow_consumer,
            flusher,
            stamps,
            queue_bytes=settings.queue_bytes,
            on_error=self._writer_failed,
            batch=connection.subprotocol == batched_frames.SUBPROTOCOL,
        )
        self._rate = TokenBucket(settings.rate_limit)
        # Bound here as well as in the context: a slow-consumer close runs on the publisher's task.
        self._log = log.bind(connection_id=connection_id(connection))
        # Closing handshakes started from a callback; kept so they are not garbage-collected.
        # Made with the first: most connections never have one.
        self._closing: set[asyncio.Task[None]] | None = None
        # The server-wide pinger.
        self._keep_alive = keep_alive
        # What the client's token allows; None: anything (a server without authentication).
        self._grant = grant
        # Frames dropped by the rate limit: the first is said (at debug, and counted at info with
        # other connections' by the server-wide log), the count in the close line.
        self._rate_limited = 0
        self._rate_limited_log = rate_limited_log
        # Set when the server cut the TCP connection without a closing handshake (drop).
        self._aborted = False
        # Publishes waiting for the bus, and the answers queued behind them: every frame is
        # answered in the order it was read.
        self._answers = Answers(settings.publish_window, settings.publish_window_bytes, self._answer_failed)

    async def run(self) -> None:
        connection = self._connection
        peer = peer_address(connection)
        request = connection.request
        hops = None if request is None else forwarded_for(request.headers)
        # What the handshake said has been read (here, and by the server before this connection
        # was made), but websockets keeps both messages, headers and all, for the connection's
        # life: the request in the connection and in its protocol's parser, the response in the
        # connection. The request object stays (websockets takes a connection without one for one
        # still in its handshake), emptied of its headers in place, which reaches both holders.
        if request is not None:
            request.headers = _NO_HEADERS
        del request
        connection.response = None
        # The subprotocol is chosen: websockets keeps the choice's callback on the protocol, bound
        # to it, with a closure holding the connection (about 0.3 KiB), for the connection's life.
        # Deleted rather than popped from vars(): making the protocol's __dict__ would slow every
        # read of its attributes, one per delivery (its state).
        with contextlib.suppress(AttributeError):
            delattr(connection.protocol, "select_subprotocol")
        self._log.debug(
            "client_connected",
            uid=str(self._request.uid),
            client=real_client_address(peer, hops, self._settings.trusted_proxies),
            peer=peer,
            topics=[topic.name for topic in self._request.topics],
        )
        opened = asyncio.get_running_loop().time()
        session = self._service.connect(self._request.uid, self._outbound, self._grant)
        self._metrics.connection_opened()
        try:
            try:
                # Nothing awaits between connect and here: `success` is the first frame.
                self._outbound.push(
                    server_frames.success_frame(
                        session.uid, self._node_id, self._request.topics, self._settings.max_message_bytes
                    )
                )
                for topic in self._request.topics:
                    if topic not in self._request.since:
                        self._log_subscribed(self._service.subscribe(session, topic), None, None)
            except Exception as error:
                await self._fail(error)
                return
            self._keep_alive.add(self)
            if session.grant.expires is None:
                # The reader alone: it runs in this task, rather than in a task of its own.
                try:
                    await self._read(session)
                except Exception as failure:
                    await self._fail(failure)
            else:
                await self._run_tasks(self._read(session), self._close_at_expiry(session.grant))
            while self._closing:
                await asyncio.gather(*self._closing, return_exceptions=True)
        finally:
            self._answers.close()
            self._keep_alive.discard(self)
            await self._outbound.close()
            self._service.disconnect(session)
            closed = how_closed(self._connection.protocol, self._aborted)
            # What never reached the client: refused once the connection stopped taking frames
            # (a slow consumer's), and what was still held when it closed.
            frames_dropped = self._outbound.dropped + self._outbound.queued
            self._metrics.connection_closed(closed.code, frames_dropped)
            self._log.debug(
                "client_disconnected",
                uid=str(self._request.uid),
                code=closed.code,
                reason=closed.reason,
                closed_by=closed.closed_by,
                frames_dropped=frames_dropped,
                rate_limited=self._rate_limited,
                seconds=round(asyncio.get_running_loop().time() - opened, 3),
            )

    async def _run_tasks(self, *jobs: Coroutine[Any, Any, None]) -> None:
        for task in await until_first_ends(*jobs):
            if not task.cancelled() and (error := task.exception()) is not None:
                await self._fail(error)

    async def _fail(self, error: BaseException) -> None:
        """A bug met this connection: log it with the connection id, close only this one (1011)."""
        self._metrics.internal_error()
        self._log.error("connection_failed", exc_info=error)
        await self._close(INTERNAL_ERROR, "internal error")

    async def _read(self, session: Session) -> None:
        trace = self._trace
        answers = self._answers
        clock = asyncio.get_running_loop().time
        expires = authentication.deadline(session.grant)
        try:
            # The URL's topics with a position recover first, each answered by `subscribed`.
            for topic, since in self._request.since.items():
                self._push_subscribed(await self._recover(session, topic, since), since, None)
            async for data in self._connection:
                if clock() >= expires:
                    # The token has expired and the 4001 close is under way: a client that does
                    # not answer it must not go on publishing until the close timeout. Frames are
                    # still read (and dropped), so that the client's close frame is.
                    continue
                # Before the rate limit and parsing: `received` is when the frame left the socket.
                received = tracing.now_us() if trace else None
                if not answers.has_room():
                    # The window is full: the next frames wait in the socket until the bus answers.
                    await answers.room()
                if not self._rate.allow():
                    self._note_rate_limited()
                    # Not a line a frame: a flood would be a flood of lines.
                    self._reply_error(
                        "rate_limited",
                        "too many frames; slow down",
                        dropped_frame_ref(data),
                        len(data),
                        logged=False,
                    )
                    continue
                try:
                    await self._handle(session, parse_client_frame(data), received, len(data))
                except FrameError as error:
                    self._reply_error(error.code, error.reason, error.ref, len(data))
        except ConnectionClosed:
            pass

    async def _handle(self, session: Session, frame: ClientFrame, received: int | None, size: int) -> None:
        """Act on one frame of `size` bytes; `received` is when it was read, with --trace only."""
        if isinstance(frame, Pub):
            await self._publish(session, frame, received, size)
            return
        if self._answers.owed:
            # A subscription's answer must come before the topic's first message, which may be
            # pushed as soon as it takes effect: it waits until the publishes before it are answered.
            await self._answers.settled()
        if isinstance(frame, Sub):
            try:
                if frame.since is None:
                    subscribed = self._service.subscribe(session, frame.topic)
                else:
                    subscribed = await self._recover(session, frame.topic, frame.since)
            except TooManyTopics as error:
                raise FrameError("too_many_topics", str(error), frame.ref) from None
            except Forbidden as error:
                raise FrameError("forbidden", str(error), frame.ref) from None
            self._push_subscribed(subscribed, frame.since, frame.ref)
        elif isinstance(frame, Unsub):
            self._service.unsubscribe(session, frame.topic)
            self._log.debug("topic_unsubscribed", topic=frame.topic.name, ref=frame.ref)
            self._outbound.push(server_frames.unsubscribed_frame(frame.topic))

    async def _publish(self, session: Session, frame: Pub, received: int | None, size: int) -> None:
        """Hand a publish to the bus, and have it answered in its turn once the bus has answered it."""
        started = time.perf_counter()
        headers = tracing.NO_STAMPS if received is None else tracing.publish_headers(frame, received)
        try:
            publishing = await self._service.hand_over(session, frame.topic, frame.body, headers, frame.id)
        except (BrokerUnavailable, PublishTimeout, IdReused, Forbidden) as error:
            raise FrameError(self._refused(frame, error, started), str(error), frame.ref) from None
        self._answers.owe(
            publishing, lambda: self._answer_publish(publishing, frame, started, received), size
        )

    def _answer_publish(
        self, publishing: Publishing, frame: Pub, started: float, received: int | None
    ) -> None:
        """Push the ack, or the error frame, of a publish the bus has answered."""
        try:
            message = publishing.outcome()
        except (BrokerUnavailable, PublishTimeout, IdReused, Forbidden) as error:
            self._send_error(self._refused(frame, error, started), str(error), frame.ref)
            return
        self._metrics.publish_answered("ack", time.perf_counter() - started)
        self._log.debug(
            "publish_accepted",
            topic=frame.topic.name,
            message_id=message.id,
            position=_position(message.position),
            ref=frame.ref,
        )
        if received is None:
            self._outbound.push(server_frames.ack_frame(frame.ref, message))
        else:
            self._outbound.push(tracing.traced_ack_frame(frame.ref, message, received))

    def _refused(self, frame: Pub, error: Exception, started: float) -> str:
        """Count and log a refused publish; the error code it is answered with."""
        code = next(code for kind, code in _PUBLISH_ERRORS.items() if isinstance(error, kind))
        self._metrics.publish_answered(code, time.perf_counter() - started)
        self._log.debug(
            "publish_refused", topic=frame.topic.name, message_id=frame.id, code=code, ref=frame.ref
        )
        return code

    async def _recover(self, session: Session, topic: Topic, since: Position) -> Subscribed:
        """Subscribe with recovery once what was queued before has reached the socket.

        A replay goes out in one go, and is refused when the queue has no room for it: waiting
        first gives each recovery the whole queue rather than what the one before left.
        """
        await self._outbound.emptied()
        return await self._service.subscribe_since(session, topic, since)

    def _push_subscribed(self, subscribed: Subscribed, since: Position | None, ref: str | None) -> None:
        """`subscribed`, then what was recovered; nothing can come between them."""
        self._log_subscribed(subscribed, since, ref)
        if subscribed.overflowed:
            self._close_slow_consumer()
            return
        push = self._outbound.push
        push(server_frames.subscribed_frame(subscribed.topic, subscribed.position, subscribed.recovered))
        for frame in subscribed.replay:
            push(frame)

    def _log_subscribed(self, subscribed: Subscribed, since: Position | None, ref: str | None) -> None:
        self._log.debug(
            "topic_subscribed",
            topic=subscribed.topic.name,
            since=_position(since),
            recovered=subscribed.recovered,
            replayed=len(subscribed.replay),
            position=_position(subscribed.position),
            overflowed=subscribed.overflowed,
            ref=ref,
        )

    def _reply_error(self, code: str, reason: str, ref: str | None, size: int, logged: bool = True) -> None:
        """Answer a frame of `size` bytes with an error frame, in its turn."""
        self._answers.give(lambda: self._send_error(code, reason, ref, logged), size)

    def _send_error(self, code: str, reason: str, ref: str | None, logged: bool = True) -> None:
        outbound = self._outbound
        dropped = outbound.dropped
        outbound.push(server_frames.error_frame(code, reason, ref))
        if outbound.dropped != dropped:
            # Refused: the connection has stopped taking frames (a slow consumer's, or closing), and
            # the frame is counted among its frames dropped, not as an error frame sent.
            return
        self._metrics.error_frame_sent(code)
        if logged:
            self._log.debug("error_frame_sent", code=code, reason=reason, ref=ref)

    def _note_rate_limited(self) -> None:
        """Count a frame the rate limit dropped; the first one is said, the rest only counted."""
        self._rate_limited += 1
        if self._rate_limited == 1:
            self._rate_limited_log.record(self._connection, str(self._request.uid), self._settings.rate_limit)

    async def ping(self) -> asyncio.Future[float] | None:
        """Ping the client for the keepalive loop, unless the socket pushes back or the connection closes.

        A socket that pushes back would make the ping wait for it, and the loop with it; the
        seed's pinger waited there, asking no pong of a client that does not read.
        """
        connection = self._connection
        if connection.protocol.state is not State.OPEN or connection.paused:
            return None
        if ping_would_wait(connection.transport):
            return None
        # websockets' pong waiter is a future (typed as an awaitable).
        return cast("asyncio.Future[float]", await connection.ping())

    def ping_timed_out(self) -> None:
        """The keepalive loop got no pong within --ping-timeout: close with 1011."""
        self._metrics.inactive_closed()
        self._log.info("client_inactive", ping_timeout=self._settings.ping_timeout)
        self._close_later(INTERNAL_ERROR, "ping timeout")

    def _writer_failed(self, error: Exception) -> None:
        """A bug met the writer task: as one met by the reader, close only this connection (1011)."""
        self._spawn(self._fail(error))

    async def _close_at_expiry(self, grant: Grant) -> None:
        """Close with 4001 when the token the connection was opened with expires."""
        await authentication.expiry(grant)
        self._log.info("token_expired", uid=str(grant.uid))
        await self._close(TOKEN_EXPIRED, "token expired")

    async def _close(self, code: int, reason: str) -> None:
        """Close with `code`, and drop the TCP connection if that takes over the close timeout.

        websockets' close() first waits for the socket to take the close frame, without a time
        limit; a client that never reads would keep its connection, and its buffers, forever.
        A slow consumer's connection is reset: its frames are lost anyway, and a plain abort would
        leave the kernel holding them. Others may still be reading what they were sent.
        """
        try:
            async with asyncio.timeout(self._settings.close_timeout):
                await self._connection.close(code, reason)
        except TimeoutError:
            self._log.info("connection_dropped", code=code, reason="close timed out")
            if code == SLOW_CONSUMER:
                reset(self._connection.transport)
            else:
                self._connection.transport.abort()

    @property
    def pending_bytes(self) -> int:
        """Bytes waiting for this client: held by the outbound path and in the socket's write buffer."""
        return self._outbound.pending_bytes

    @property
    def frames_queued(self) -> int:
        """Frames waiting for this client's socket."""
        return self._outbound.queued

    async def drain_and_close(self) -> None:
        """Answer the publishes in flight, hand the client everything queued for it (and pushed
        meanwhile), then close with 1001."""
        try:
            # Each publish has its deadline: this ends by the last one's at the latest.
            await self._answers.settled()
            await self._outbound.drain()
        except Exception as error:
            await self._fail(error)
            return
        await self._close(GOING_AWAY, "server shutting down")

    def drop(self) -> Undelivered:
        """Cut the TCP connection now, the shutdown deadline having passed; what the client lost, logged."""
        transport = self._connection.transport
        if self._connection.protocol.state is State.OPEN:
            undelivered = Undelivered(self._outbound.queued, transport.get_write_buffer_size())
        else:
            # Closing: every frame before the close frame was handed to the socket, or was lost to
            # the close itself (a slow consumer's, say) and counted there.
            undelivered = Undelivered(0, 0)
        if undelivered.anything:
            self._log.warning(
                "shutdown_frames_lost", frames=undelivered.frames, unsent_bytes=undelivered.unsent_bytes
            )
        self._aborted = True
        transport.abort()
        return undelivered

    def _answer_failed(self, error: BaseException) -> None:
        """An answer given from the bus's callback raised (a bug): close this connection with 1011."""
        self._spawn(self._fail(error))

    def _close_slow_consumer(self) -> None:
        self._metrics.slow_consumer_closed()
        self._log.warning(
            "slow_consumer_closed",
            queue_size=self._settings.queue_size,
            queue_bytes=self._settings.queue_bytes,
            pending_bytes=self._outbound.pending_bytes,
        )
        self._close_later(SLOW_CONSUMER, "slow consumer")

    def _close_later(self, code: int, reason: str) -> None:
        """Start the closing handshake from a callback; `run` waits for it before it returns."""
        self._spawn(self._close(code, reason))

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        if self._closing is None:
            self._closing = set()
        task = asyncio.create_task(job)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


# The bytes of a ping frame from the server: a 2-byte header and websockets' 4-byte payload, unmasked.
_PING_FRAME_BYTES = 6


def ping_would_wait(transport: asyncio.WriteTransport) -> bool:
    """Whether a ping frame would fill the write buffer past its high-water mark.

    websockets would then wait for the socket to drain before `ping()` returns, and the
    server-wide keepalive loop, which pings one connection after another, with it.
    """
    return transport.get_write_buffer_size() + _PING_FRAME_BYTES > transport.get_write_buffer_limits()[1]


# The headers of every connection's request once the handshake is over; never written to.
_NO_HEADERS = Headers()

# The error code each refused publish is answered with.
_PUBLISH_ERRORS: dict[type[Exception], str] = {
    BrokerUnavailable: "broker_unavailable",
    PublishTimeout: "publish_timeout",
    IdReused: "id_reused",
    Forbidden: "forbidden",
}


def _position(position: Position | None) -> dict[str, object] | None:
    """A position as a log field."""
    return None if position is None else {"epoch": position.epoch, "offset": position.offset}
