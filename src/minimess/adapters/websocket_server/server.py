"""The WebSocket server: HTTP routing, accepting connections, and graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import time
from pathlib import Path

import attrs
import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from minimess.adapters.websocket_server.authentication import Authentication
from minimess.adapters.websocket_server.connection import AcceptedConnection, connection_id
from minimess.adapters.websocket_server.outbound import Flusher
from minimess.adapters.websocket_server.settings import WebSocketSettings
from minimess.adapters.websocket_server.stats import ServerStats
from minimess.adapters.wire.paths import PathError, parse_subscribe_path
from minimess.app.messaging import MessagingService
from minimess.domain.ports import TokenVerifier

log = structlog.get_logger(__name__)


class WebSocketServer:
    """Serves protocol v1 on one port until SIGINT or SIGTERM, then drains every client."""

    def __init__(
        self,
        settings: WebSocketSettings,
        service: MessagingService,
        trace: bool = False,
        flusher: Flusher | None = None,
        tokens: TokenVerifier | None = None,
    ) -> None:
        self._settings = settings
        self._service = service
        # --trace: stage times on every publish and message frame (for minimess bench --trace).
        self._trace = trace
        self.stats = ServerStats()
        # Writes what every connection got in one turn of the event loop, at the end of the turn.
        self._flusher = Flusher() if flusher is None else flusher
        # Every connection whose handler runs, so that a shutdown can drain and close them all.
        self._clients: set[AcceptedConnection] = set()
        # Set once the socket listens; `port` is then the bound one (useful with port 0).
        self.listening = asyncio.Event()
        self.port = settings.port
        self._node_id = settings.node_id or ""
        # Without a token verifier the server is open: anyone may connect as anyone.
        self._authentication = Authentication(tokens)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Serve until `stop` is set, or until SIGINT/SIGTERM when no event is given."""
        if stop is None:
            stop = _stop_on_signals()
        settings = self._settings
        _raise_file_limit()
        async with self._service.running():
            server = await serve(
                self._handle,
                settings.host,
                settings.port,
                process_request=self._route,
                # Compression is off so that a message's frame is the same bytes for everyone.
                compression=None,
                max_size=settings.max_message_bytes,
                # Incoming frames not yet read; when full, reading from the socket pauses and TCP
                # pushes back on the client, so a flooding client slows down only itself.
                max_queue=16,
                # Keepalive is ours (AcceptedConnection's pinger), not the library's.
                ping_interval=None,
                close_timeout=settings.close_timeout,
                server_header=None,
            )
            port = self.port = _bound_port(server)
            self._node_id = attrs.evolve(settings, port=port).node_name
            log.info(
                "server_listening",
                host=settings.host,
                port=port,
                node=self._node_id,
                auth=self._authentication.mode,
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
        log.info(
            "server_stopped",
            **attrs.asdict(self.stats),
            drain_lost_connections=lost_connections,
            drain_lost_frames=lost_frames,
        )

    async def _handle(self, connection: ServerConnection) -> None:
        with structlog.contextvars.bound_contextvars(connection_id=connection_id(connection)):
            assert connection.request is not None  # set by the handshake
            request = parse_subscribe_path(connection.request.path, self._service.max_topics)
            client = AcceptedConnection(
                connection,
                request,
                self._service,
                self._settings,
                self.stats,
                self._node_id,
                self._flusher,
                self._trace,
                grant=self._authentication.grant(connection, request.uid),
            )
            self._clients.add(client)
            try:
                await client.run()
            finally:
                self._clients.discard(client)

    def _route(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer plain HTTP endpoints and bad paths; return None to go on with the upgrade."""
        path = request.path.partition("?")[0]
        if path == "/healthz":
            return connection.respond(200, "ok\n")
        if path == "/readyz":
            if self._service.is_ready():
                return connection.respond(200, "ready\n")
            return connection.respond(503, "broker unavailable\n")
        if path == "/stats":
            return _json_response(self._stats_document())
        try:
            subscribe = parse_subscribe_path(path, self._service.max_topics)
        except PathError as error:
            log.info("request_rejected", path=path[:200], status=error.status, reason=error.reason)
            return connection.respond(error.status, error.reason + "\n")
        if (refused := self._authentication.admit(connection, request, subscribe)) is not None:
            return refused
        return None

    def _stats_document(self) -> dict[str, object]:
        counters = self._service.counters()
        return {
            "node": self._node_id,
            "connections": counters.connections,
            "deliveries": counters.deliveries,
            **attrs.asdict(self.stats),
            "broker": dict(counters.bus),
            # Read by `minimess bench --stats` to measure a server it did not start itself.
            "process": {"cpu_seconds": time.process_time(), "rss_bytes": _rss_bytes()},
        }


def _json_response(document: dict[str, object]) -> Response:
    body = json.dumps(document).encode()
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return Response(200, "OK", headers, body)


def _raise_file_limit() -> None:
    """Allow as many clients as the hard limit on open files does; the soft one is often 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        log.debug("file_limit_raised", soft=soft, hard=hard)


def _rss_bytes() -> int | None:
    """This process's resident set size now (Linux), or None where /proc is not there."""
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


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
