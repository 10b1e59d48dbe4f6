"""The WebSocket server: HTTP routing, accepting connections, and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
from collections.abc import Mapping, Sequence

import attrs
import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from minimess.adapters.websocket_server import connection_caps, start_line
from minimess.adapters.websocket_server.accept_errors import AcceptErrorLog
from minimess.adapters.websocket_server.authentication import Authentication
from minimess.adapters.websocket_server.connection import AcceptedConnection
from minimess.adapters.websocket_server.connection_caps import ConnectionSlots
from minimess.adapters.websocket_server.handshake_pool import HandshakePool, counted_by, deepen_listen_queue
from minimess.adapters.websocket_server.http_endpoints import (
    HttpEndpoints,
    head_without_body,
    websocket_method_refusal,
)
from minimess.adapters.websocket_server.keepalive import KeepAlive
from minimess.adapters.websocket_server.log_context import connection_id
from minimess.adapters.websocket_server.origins import OriginPolicy
from minimess.adapters.websocket_server.outbound import Flusher
from minimess.adapters.websocket_server.page_files import PageFiles
from minimess.adapters.websocket_server.rate_limited_log import RateLimitedLog
from minimess.adapters.websocket_server.rejections import RejectionLog
from minimess.adapters.websocket_server.settings import WebSocketSettings
from minimess.adapters.websocket_server.stats import SERVER_COUNTERS, ServedMetrics, stats_document
from minimess.adapters.wire import batched_frames
from minimess.adapters.wire.paths import PathError, parse_subscribe_path
from minimess.app.messaging import MessagingService
from minimess.domain.metrics import QueuedBytes
from minimess.domain.ports import TokenVerifier

log = structlog.get_logger(__name__)


class WebSocketServer:
    """Serves protocol v1 on one port until SIGINT or SIGTERM, then drains every client."""

    def __init__(
        self,
        settings: WebSocketSettings,
        service: MessagingService,
        metrics: ServedMetrics,
        trace: bool = False,
        flusher: Flusher | None = None,
        tokens: TokenVerifier | None = None,
        bus: Mapping[str, object] | None = None,
        page: PageFiles | None = None,
        reuse_port: bool = False,
    ) -> None:
        self._settings = settings
        # A worker of `--workers N`: the port is shared (SO_REUSEPORT) with the other workers.
        self.reuse_port = reuse_port
        self._service = service
        # --trace: stage times on every publish and message frame (for minimess bench --trace).
        self._trace = trace
        # What connections report as it happens; /metrics and /stats show it.
        self.metrics = metrics
        # Writes what every connection got in one turn of the event loop, at the end of the turn.
        self._flusher = Flusher() if flusher is None else flusher
        # Every connection whose handler runs, so that a shutdown can drain and close them all.
        self._clients: set[AcceptedConnection] = set()
        # Set once the socket listens; `port` is then the bound one (useful with port 0).
        self.listening = asyncio.Event()
        self.port = settings.port
        self._node_id = settings.node_id or ""
        # The plain HTTP endpoints of the public port; /stats and /metrics move to the admin port
        # when there is one.
        self._endpoints = HttpEndpoints(
            service.is_ready,
            self.stats_document,
            settings.admin_port is None,
            settings.admin_token,
            metrics.exposition,
            index=True,
            page=page,
        )
        # The admin listener's (with --admin-port): the same endpoints, /stats and /metrics included.
        self._admin_endpoints = HttpEndpoints(
            service.is_ready,
            self.stats_document,
            admin_token=settings.admin_token,
            exposition=metrics.exposition,
        )
        self._origins = OriginPolicy(settings.allowed_origins)
        # Set in `run`, once the file limit is known.
        self._slots: ConnectionSlots | None = None
        self._handshakes: HandshakePool | None = None
        # Set once the admin listener listens (with --admin-port), like `port`.
        self.admin_port: int | None = None
        # Without a token verifier the server is open: anyone may connect as anyone.
        # Refused requests: each at debug, at info as a count at most once a second.
        self._rejections = RejectionLog()
        self._authentication = Authentication(tokens, rejections=self._rejections)
        # Clients over --rate-limit: each at debug, at info as a count at most once a second.
        self._rate_limited_log = RateLimitedLog()
        # What the start line says of the bus (its kind, and Kafka's address and topic).
        self._bus = {} if bus is None else dict(bus)
        # One pinger for every connection (run while the server serves).
        self._keep_alive = KeepAlive(settings.ping_interval, settings.ping_timeout)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Serve until `stop` is set, or until SIGINT/SIGTERM when no event is given."""
        if stop is None:
            stop = _stop_on_signals()
        _raise_file_limit()
        slots = self._slots = self._connection_slots()
        handshakes = self._handshakes = HandshakePool(
            slots.caps.max_handshakes, self._settings.max_handshakes_per_ip, self._settings.trusted_proxies
        )
        with AcceptErrorLog().installed(asyncio.get_running_loop()):
            await self._serve(stop, slots, handshakes)

    async def _serve(self, stop: asyncio.Event, slots: ConnectionSlots, handshakes: HandshakePool) -> None:
        settings = self._settings
        async with (
            self._service.running(),
            self._keep_alive.running(),
            contextlib.AsyncExitStack() as listeners,
        ):
            if settings.admin_port is not None:
                admin = await listeners.enter_async_context(self._serve_admin(settings.admin_port))
                deepen_listen_queue(admin)
                self.admin_port = _bound_port(admin)
                log.info("admin_listening", host=settings.host, port=self.admin_port)
            server = await serve(
                self._handle,
                settings.host,
                settings.port,
                process_request=self._route,
                process_response=head_without_body,
                # Compression is off so that a message's frame is the same bytes for everyone.
                compression=None,
                # minimess.batch if the client offers it; any other offer is left unanswered.
                select_subprotocol=batch_if_offered,
                max_size=settings.max_message_bytes,
                # Incoming frames not yet read; when full, reading from the socket pauses and TCP
                # pushes back on the client, so a flooding client slows down only itself.
                max_queue=16,
                # Keepalive is ours (the server-wide KeepAlive loop), not the library's.
                ping_interval=None,
                close_timeout=settings.close_timeout,
                # A connection that has not finished its handshake by then is dropped: it holds a
                # descriptor and a place in the handshake pool.
                open_timeout=settings.open_timeout,
                server_header=None,
                # Every connection is counted from its accept: first in the handshake pool, then
                # (admitted) in a slot; a listen backlog is what one wakeup accepts at most.
                create_connection=counted_by(handshakes),
                backlog=connection_caps.ACCEPT_BACKLOG,
                reuse_port=self.reuse_port,
            )
            deepen_listen_queue(server)
            port = self.port = _bound_port(server)
            self._node_id = attrs.evolve(settings, port=port).node_name
            start_line.start_log.info(
                "server_listening",
                # First what a reader of the line needs most (the console keeps this order).
                **start_line.where(
                    settings.host, port, self.admin_port, self._bus, self._endpoints.serves_page
                ),
                auth=self._authentication.mode,
                host=settings.host,
                port=port,
                node=self._node_id,
                loop=start_line.event_loop(),
                max_connections=slots.caps.max_connections,
                max_connections_per_ip=slots.caps.max_connections_per_ip or None,
                max_handshakes=slots.caps.max_handshakes,
                max_handshakes_per_ip=settings.max_handshakes_per_ip or None,
                open_timeout=settings.open_timeout,
                allowed_origins=list(settings.allowed_origins),
                admin_port=self.admin_port,
                admin_token=settings.admin_token is not None,
            )
            self._authentication.announce()
            self.listening.set()
            try:
                await stop.wait()
            finally:
                await self._shut_down(server)

    async def _shut_down(self, server: Server) -> None:
        """Stop accepting; give every client what is queued for it, then 1001, within the timeout."""
        log.info(
            "server_stopping",
            connections=self._service.counters().connections,
            frames_queued=sum(client.frames_queued for client in self._clients),
        )
        # Connections stay open: closing them now would send the close frame ahead of their queues.
        server.close(close_connections=False)
        lost_connections = lost_frames = 0
        try:
            async with asyncio.timeout(self._settings.shutdown_timeout):
                # Every open connection is in `_clients` by now: websockets answers a handshake that
                # ends after the listener closed with 503, and between a 101 and `_handle`'s start
                # nothing waits.
                await asyncio.gather(*(client.drain_and_close() for client in self._clients))
                await server.wait_closed()
        except TimeoutError:
            log.warning("shutdown_timed_out", connections=len(self._clients))
            for client in list(self._clients):
                undelivered = client.drop()
                if undelivered.anything:
                    lost_connections += 1
                    lost_frames += undelivered.frames
            await server.wait_closed()
        # As of now, not as last served: the stop line tells everything that happened.
        stats = self.stats_document(fresh=True)
        log.info(
            "server_stopped",
            **{name: stats[name] for name in SERVER_COUNTERS},
            drain_lost_connections=lost_connections,
            drain_lost_frames=lost_frames,
        )

    async def _handle(self, connection: ServerConnection) -> None:
        # Bound for good: the handler runs in a task of its own, whose copy of the context ends
        # with it (a `with` block would hold a context manager per connection for its life).
        structlog.contextvars.bind_contextvars(connection_id=connection_id(connection))
        assert connection.request is not None  # set by the handshake
        request = parse_subscribe_path(connection.request.path, self._service.max_topics)
        client = AcceptedConnection(
            connection,
            request,
            self._service,
            self._settings,
            self.metrics,
            self._node_id,
            self._flusher,
            self._trace,
            grant=self._authentication.grant(connection, request.uid),
            rate_limited_log=self._rate_limited_log,
            keep_alive=self._keep_alive,
        )
        self._clients.add(client)
        try:
            await client.run()
        finally:
            self._clients.discard(client)

    def _route(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer plain HTTP, or refuse the request; None lets the WebSocket upgrade go on.

        The connection caps come last, so that a request refused for another reason never takes a slot.
        """
        if (response := self._endpoints.answer(connection, request)) is not None:
            return response
        if (response := websocket_method_refusal(connection, request)) is not None:
            return response
        path = request.path.partition("?")[0]
        try:
            subscribe = parse_subscribe_path(path, self._service.max_topics)
        except PathError as error:
            self._rejections.record(connection, error.status, error.reason, path=path[:200])
            return connection.respond(error.status, error.reason + "\n")
        if (response := self._refuse_origin(connection, request)) is not None:
            return response
        if (response := self._authentication.admit(connection, request, subscribe)) is not None:
            return response
        # Both set before the server listens.
        assert self._slots is not None
        assert self._handshakes is not None
        response = self._slots.admit(connection, request)
        if response is None:
            # Admitted: its slot counts it from now on.
            self._handshakes.leave(connection)
        return response

    def _refuse_origin(self, connection: ServerConnection, request: Request) -> Response | None:
        reason = self._origins.refusal(request)
        if reason is None:
            return None
        origin = ", ".join(request.headers.get_all("Origin"))
        self._rejections.record(connection, 403, reason, origin=origin[:200])
        return connection.respond(403, reason + "\n")

    def _route_admin(self, connection: ServerConnection, request: Request) -> Response:
        """The admin listener answers its endpoints and nothing else: it never upgrades."""
        response = self._admin_endpoints.answer(connection, request)
        if response is None:
            return connection.respond(404, "no such endpoint: /metrics, /stats, /healthz and /readyz are\n")
        return response

    def _serve_admin(self, port: int) -> Server:
        """A second listener, for plain HTTP only: the same parser, a router that answers everything."""
        return serve(
            _never_upgraded,
            self._settings.host,
            port,
            process_request=self._route_admin,
            process_response=head_without_body,
            open_timeout=self._settings.open_timeout,
            server_header=None,
            # Its connections stay pending until they close: a small pool, the oldest evicted.
            create_connection=counted_by(HandshakePool(connection_caps.ADMIN_HANDSHAKES, listener="admin")),
            backlog=connection_caps.ADMIN_HANDSHAKES,
        )

    def _connection_slots(self) -> ConnectionSlots:
        """The caps, --max-connections fitted under the file limit with descriptors to spare."""
        settings = self._settings
        reserve = connection_caps.FILE_RESERVE
        if settings.admin_port is not None:
            reserve += connection_caps.ADMIN_FILES
        caps = connection_caps.fit_caps(
            settings.max_connections,
            settings.max_connections_per_ip,
            connection_caps.current_file_limit(),
            reserve,
            settings.max_handshakes,
        )
        if caps.lowered:
            log.warning(
                "max_connections_lowered",
                requested=caps.requested,
                max_connections=caps.max_connections,
                file_limit=caps.file_limit,
                reserve=reserve,
                max_handshakes=caps.max_handshakes,
            )
        return ConnectionSlots(caps, settings.trusted_proxies)

    def stats_document(self, fresh: bool = False) -> dict[str, object]:
        """What /stats shows: this server's name, and the figures of its metrics (`fresh`: as of now)."""
        return stats_document(self._node_id, self.metrics.summary(fresh))

    def queued_bytes(self) -> QueuedBytes:
        """What the open connections hold for their clients now (read when the metrics are scraped)."""
        pending = [client.pending_bytes for client in self._clients]
        return QueuedBytes(total=sum(pending), worst=max(pending, default=0))


async def _never_upgraded(_connection: ServerConnection) -> None:
    """The admin listener's connection handler: never called, since every request gets an answer."""


def batch_if_offered(_connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """The subprotocol of a handshake: minimess.batch if the client offers it, else none (whatever
    else it offers: a server that names no subprotocol has always accepted such clients)."""
    return Subprotocol(batched_frames.SUBPROTOCOL) if batched_frames.SUBPROTOCOL in offered else None


def _raise_file_limit() -> None:
    """Allow as many clients as the hard limit on open files does; the soft one is often 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        log.debug("file_limit_raised", soft=soft, hard=hard)


def _bound_port(server: Server) -> int:
    for sock in server.sockets:
        return int(sock.getsockname()[1])
    raise RuntimeError("server has no listening socket")


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop
