"""The plain HTTP endpoints (/, /page/, /healthz, /readyz, /stats, /metrics), their methods, admin token."""

from __future__ import annotations

import dataclasses
import hmac
import json
import re
from collections.abc import Callable, Mapping
from typing import Final

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers, MultipleValuesError
from websockets.http11 import Request, Response

from minimess.adapters.websocket_server import page_files
from minimess.adapters.websocket_server.page_files import PageFiles
from minimess.domain.excerpts import excerpt

ENDPOINT_METHODS: Final = "GET, HEAD"
INDEX: Final = "/"
HEALTHZ: Final = "/healthz"
READYZ: Final = "/readyz"
STATS: Final = "/stats"
METRICS: Final = "/metrics"


class HttpEndpoints:
    """Answers the plain HTTP endpoints of one listener: GET and HEAD only, HEAD without a body.

    /stats and /metrics tell the host name and the process's figures: they can move to an admin
    listener (`serve_stats` off on the public one) and require `Authorization: Bearer <admin token>`.
    """

    def __init__(
        self,
        is_ready: Callable[[], bool],
        stats_document: Callable[[], Mapping[str, object]],
        serve_stats: bool = True,
        admin_token: str | None = None,
        exposition: Callable[[], tuple[bytes, str]] | None = None,
        index: bool = False,
        page: PageFiles | None = None,
    ) -> None:
        # Whether the bus works (MessagingService.is_ready), for /readyz.
        self._is_ready = is_ready
        self._stats_document = stats_document
        # /metrics' body and content type (the Prometheus text format); None: no /metrics.
        self._exposition = exposition
        self._admin_token = admin_token
        self._routes: dict[str, Callable[[ServerConnection, Request], Response]] = {
            HEALTHZ: self._healthz,
            READYZ: self._readyz,
        }
        if serve_stats:
            self._routes[STATS] = self._stats
            if exposition is not None:
                self._routes[METRICS] = self._metrics
        # The page saying what this is and how to connect: on the listener clients connect to.
        if index:
            self._routes[INDEX] = self._index
        # Whether /metrics is served here, like /stats, or on the admin port.
        self._serve_stats = serve_stats
        # The browser page: `/` for a browser, its files under /page/; None: `/` is plain text only.
        self._page = page if index and page is not None and page.has_index() else None

    @property
    def serves_page(self) -> bool:
        """Whether a browser asking for `/` gets the chat page here."""
        return self._page is not None

    def answer(self, connection: ServerConnection, request: Request) -> Response | None:
        """The answer to a request for one of these endpoints; None for any other path."""
        path = request.path.partition("?")[0]
        route = self._routes.get(path)
        if route is None:
            if self._page is None or not path.startswith(page_files.PREFIX):
                return None
            route = self._page_file
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed(connection, ENDPOINT_METHODS)
        return head_without_body(connection, request, route(connection, request))

    def _index(self, _connection: ServerConnection, request: Request) -> Response:
        if self._page is not None and page_files.accepts_html(request.headers):
            page = self._page.answer(request, page_files.INDEX)
            assert page is not None  # a page without its index is none (__init__)
            return page
        body = index_page(_host(request.headers), self._serve_stats, self._page is not None).encode()
        headers = Headers([("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
        if self._page is not None:
            headers["Vary"] = "Accept"
        return Response(200, "OK", headers, body)

    def _page_file(self, connection: ServerConnection, request: Request) -> Response:
        assert self._page is not None  # routed only with a page
        name = request.path.partition("?")[0].removeprefix(page_files.PREFIX)
        # The page itself is only `/`: its relative page/… links would not resolve from /page/.
        answer = None if name == page_files.INDEX else self._page.answer(request, name)
        if answer is None:
            return connection.respond(404, f"no such file of the page: {excerpt(name)}\n")
        return answer

    def _healthz(self, connection: ServerConnection, _request: Request) -> Response:
        return connection.respond(200, "ok\n")

    def _readyz(self, connection: ServerConnection, _request: Request) -> Response:
        if self._is_ready():
            return connection.respond(200, "ready\n")
        return connection.respond(503, "broker unavailable\n")

    def _stats(self, connection: ServerConnection, request: Request) -> Response:
        if not self._authorized(request):
            return _unauthorized(connection, STATS)
        return _json_response(self._stats_document())

    def _metrics(self, connection: ServerConnection, request: Request) -> Response:
        if not self._authorized(request):
            return _unauthorized(connection, METRICS)
        assert self._exposition is not None  # routed only with one
        body, content_type = self._exposition()
        return _response(body, content_type)

    def _authorized(self, request: Request) -> bool:
        if self._admin_token is None:
            return True
        try:
            header = request.headers.get("Authorization") or ""
        except MultipleValuesError:
            return False
        scheme, _, credentials = header.strip().partition(" ")
        # In constant time, so that the answer's timing does not tell how much of a guess was right.
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), self._admin_token.encode()
        )


def index_page(host: str, metrics_here: bool, page: bool = False) -> str:
    """What GET / says: what this server is, how to connect to it, and its other endpoints."""
    metrics = "here" if metrics_here else "on the admin port (--admin-port), not here"
    browser = f"\nOpen http://{host}/ in a browser to chat there.\n" if page else ""
    return f"""minimess: a real-time messaging server (WebSocket, protocol v1).
{browser}
Connect a WebSocket client to
    ws://{host}/subscribe/id:<uid>/topic:<topic>
with one /topic:<topic> segment per topic (or none), for example
    minimess client --server ws://{host} --uid <uid> --topic <topic>
then send JSON text frames:
    {{"type": "sub", "topic": "<topic>"}}
    {{"type": "pub", "topic": "<topic>", "body": "<text>"}}
and receive {{"type": "message", ...}} for every message of your topics.

Plain HTTP (GET or HEAD):
    /healthz   200 while the server runs
    /readyz    200 when its broker works, 503 when not
    /metrics   Prometheus metrics, {metrics}
    /stats     the same figures as one JSON object, {metrics}
"""


# A Host header as a client would write the server's address: a name or an IP address, and a port.
_HOST = re.compile(r"(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


def _host(headers: Headers) -> str:
    """The address the client reached this server at, from Host; a placeholder when it is odd."""
    try:
        host = headers.get("Host") or ""
    except MultipleValuesError:
        host = ""
    return host if _HOST.fullmatch(host) else "<host>:<port>"


def head_without_body(_connection: ServerConnection, request: Request, response: Response) -> Response:
    """The answer to a HEAD has the status and headers of the GET's, Content-Length included, and no body.

    RFC 9110 §9.3.2; for every answer a listener gives (websockets' `process_response` hook):
    endpoints, refusals and 404s alike.
    """
    if request.method == "HEAD" and response.body:
        return dataclasses.replace(response, body=b"")
    return response


def websocket_method_refusal(connection: ServerConnection, request: Request) -> Response | None:
    """405 for a WebSocket path asked with another method than GET (RFC 6455 §4.1), before any slot."""
    if request.method == "GET":
        return None
    return method_not_allowed(connection, "GET")


def method_not_allowed(connection: ServerConnection, allow: str) -> Response:
    response = connection.respond(405, f"method not allowed: use {allow.replace(', ', ' or ')}\n")
    response.headers["Allow"] = allow
    return response


def _unauthorized(connection: ServerConnection, path: str) -> Response:
    response = connection.respond(401, f"{path} needs Authorization: Bearer <admin token>\n")
    response.headers["WWW-Authenticate"] = 'Bearer realm="minimess admin"'
    return response


def _json_response(document: Mapping[str, object]) -> Response:
    return _response(json.dumps(document).encode(), "application/json")


def _response(body: bytes, content_type: str) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return Response(200, "OK", headers, body)
