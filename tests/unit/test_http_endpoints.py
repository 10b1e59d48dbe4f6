"""The plain HTTP endpoints: GET and HEAD only, HEAD without a body, the figures behind the admin token."""

from __future__ import annotations

import json
from typing import cast

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from minimess.adapters.websocket_server.http_endpoints import HttpEndpoints, websocket_method_refusal
from tests.unit.fakes import HandshakeConnection

STATS = {"node": "unit", "connections": 3}
EXPOSITION = (b"# TYPE minimess_connections gauge\nminimess_connections 3.0\n", "text/plain; version=0.0.4")
TOKEN = "s3cret-admin-token"


def endpoints(serve_stats: bool = True, admin_token: str | None = None, ready: bool = True) -> HttpEndpoints:
    return HttpEndpoints(lambda: ready, lambda: STATS, serve_stats, admin_token, lambda: EXPOSITION)


async def answer(
    endpoints: HttpEndpoints, path: str, method: str = "GET", headers: Headers | None = None
) -> Response | None:
    connection = cast(ServerConnection, HandshakeConnection())
    return endpoints.answer(connection, Request(path, headers or Headers(), method))


async def respond(
    endpoints: HttpEndpoints, path: str, method: str = "GET", headers: Headers | None = None
) -> Response:
    """The answer to a request for one of the endpoints (which always has one)."""
    response = await answer(endpoints, path, method, headers)
    assert response is not None
    return response


async def test_the_endpoints_answer_get() -> None:
    healthz, readyz, stats = [await respond(endpoints(), path) for path in ("/healthz", "/readyz", "/stats")]
    assert (healthz.status_code, healthz.body) == (200, b"ok\n")
    assert (readyz.status_code, readyz.body) == (200, b"ready\n")
    assert stats.status_code == 200
    assert json.loads(stats.body) == STATS
    assert (await respond(endpoints(ready=False), "/readyz")).status_code == 503


async def test_metrics_answers_the_exposition_with_its_content_type() -> None:
    metrics = await respond(endpoints(), "/metrics")
    assert (metrics.status_code, metrics.body) == (200, EXPOSITION[0])
    assert metrics.headers["Content-Type"] == EXPOSITION[1]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/stats", "/metrics"])
async def test_head_gets_the_gets_status_and_headers_and_no_body(path: str) -> None:
    get = await respond(endpoints(), path)
    head = await respond(endpoints(), path, "HEAD")
    assert head.status_code == get.status_code
    assert head.headers["Content-Length"] == str(len(get.body)) != "0"
    assert head.headers["Content-Type"] == get.headers["Content-Type"]
    assert head.body == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
async def test_other_methods_get_405_with_allow(method: str) -> None:
    response = await respond(endpoints(), "/healthz", method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"


async def test_other_paths_are_not_theirs() -> None:
    assert await answer(endpoints(), "/subscribe/id:alice") is None
    assert await answer(endpoints(serve_stats=False), "/stats") is None
    assert await answer(endpoints(serve_stats=False), "/metrics") is None


async def test_the_websocket_path_takes_get_only() -> None:
    connection = cast(ServerConnection, HandshakeConnection())
    assert websocket_method_refusal(connection, Request("/subscribe/id:a", Headers(), "GET")) is None
    for method in ("HEAD", "POST"):
        response = websocket_method_refusal(connection, Request("/subscribe/id:a", Headers(), method))
        assert response is not None
        assert (response.status_code, response.headers["Allow"]) == (405, "GET")


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"],
    ids=["none", "wrong", "not-bearer", "longer", "empty"],
)
@pytest.mark.parametrize("path", ["/stats", "/metrics"])
async def test_figures_with_an_admin_token_refuse_any_other_credentials(
    authorization: str | None, path: str
) -> None:
    headers = Headers() if authorization is None else Headers([("Authorization", authorization)])
    response = await respond(endpoints(admin_token=TOKEN), path, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.body == f"{path} needs Authorization: Bearer <admin token>\n".encode()


async def test_figures_with_an_admin_token_answer_the_token_and_health_needs_none() -> None:
    admin = endpoints(admin_token=TOKEN)
    for path in ("/stats", "/metrics"):
        response = await respond(admin, path, headers=Headers([("Authorization", f"bearer {TOKEN}")]))
        assert response.status_code == 200
    assert (await respond(admin, "/healthz")).status_code == 200


async def test_the_index_page_says_how_to_connect_at_the_address_the_client_used() -> None:
    public = HttpEndpoints(lambda: True, lambda: STATS, index=True)
    headers = Headers([("Host", "chat.example.com:8080")])
    page = await respond(public, "/", headers=headers)
    assert (page.status_code, page.headers["Content-Type"]) == (200, "text/plain; charset=utf-8")
    text = page.body.decode()
    assert "ws://chat.example.com:8080/subscribe/id:<uid>/topic:<topic>" in text
    for path in ("/healthz", "/readyz", "/metrics", "/stats"):
        assert f"    {path} " in text
    assert "Prometheus metrics, here" in text
    assert "one JSON object, here" in text
    head = await respond(public, "/?from=browser", "HEAD", headers)
    assert (head.status_code, head.headers["Content-Length"], head.body) == (200, str(len(page.body)), b"")


async def test_the_index_page_names_the_admin_port_for_metrics_and_no_odd_host() -> None:
    public = HttpEndpoints(lambda: True, lambda: STATS, serve_stats=False, index=True)
    page = await respond(public, "/", headers=Headers([("Host", "evil.example/<b>Injected</b>")]))
    text = page.body.decode()
    assert "ws://<host>:<port>/subscribe/id:<uid>/topic:<topic>" in text
    assert "Injected" not in text
    assert "Prometheus metrics, on the admin port (--admin-port), not here" in text
    assert "one JSON object, on the admin port (--admin-port), not here" in text


async def test_only_the_listener_clients_connect_to_has_the_index_page() -> None:
    assert await answer(endpoints(), "/") is None
    assert await answer(HttpEndpoints(lambda: True, lambda: STATS, index=True), "/index.html") is None
