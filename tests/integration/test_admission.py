"""Who may open a connection, as a client sees it: methods, Origin, connection caps, the open timeout,
failed accepts at the file limit, and the admin endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.integration.proxy_process import ProxyProcess
from tests.integration.server_process import ServerProcess
from tests.integration.wire import http_get, logged, open_client, subscribe_path, unique
from tests.timeouts import scaled

pytestmark = pytest.mark.integration

StartServer = Callable[..., ServerProcess]
ADMIN_TOKEN = "admin-token-for-tests"
# A file limit that leaves a server room for 176 connections once its reserve of 80 is kept: 64
# for the handshake pool (its least), 112 for admitted connections.
FILE_LIMIT = 256
CAP_UNDER_FILE_LIMIT = 112


async def raw_http(port: int, request: str) -> tuple[int, dict[str, str], bytes]:
    """Send one HTTP request as written and read the answer until the server closes: status, headers, body."""
    async with asyncio.timeout(scaled(10)):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request.encode())
            answer = await reader.read()
        finally:
            writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


def request(method: str, path: str, *headers: str) -> str:
    return "".join(f"{line}\r\n" for line in (f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers, ""))


def upgrade_request(path: str, headers: dict[str, str]) -> str:
    """A WebSocket handshake request for `path` with these headers (Host among them), as written."""
    lines = [
        f"GET {path} HTTP/1.1",
        *(f"{name}: {value}" for name, value in headers.items()),
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        "",
    ]
    return "".join(f"{line}\r\n" for line in lines)


async def refused_status(url: str, **options: Any) -> int:
    """The HTTP status a WebSocket handshake to `url` is refused with (it must be refused)."""
    with pytest.raises(InvalidStatus) as refused:
        await connect(url, open_timeout=scaled(10), **options)
    return refused.value.response.status_code


async def connects(url: str, **options: Any) -> None:
    """Open a WebSocket to `url`, read its `success` frame and close it."""
    async with connect(url, open_timeout=scaled(10), **options) as connection:
        async with asyncio.timeout(scaled(10)):
            assert json.loads(await connection.recv())["type"] == "success"


async def url_status(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """Status and body of a GET of `url` (any port), without blocking the event loop."""

    def get() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers=headers or {}), timeout=scaled(10)
            ) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    return await asyncio.to_thread(get)


# Methods


async def test_the_http_endpoints_take_get_and_head_only(server: ServerProcess) -> None:
    status, headers, _ = await raw_http(server.port, request("POST", "/healthz", "Content-Length: 0"))
    assert (status, headers["Allow"]) == (405, "GET, HEAD")
    for path in ("/readyz", "/stats"):
        status, headers, _ = await raw_http(server.port, request("DELETE", path))
        assert (status, headers["Allow"]) == (405, "GET, HEAD")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/stats"])
async def test_head_gets_the_headers_of_get_and_no_body(server: ServerProcess, path: str) -> None:
    get_status, get_headers, get_body = await raw_http(server.port, request("GET", path))
    status, headers, body = await raw_http(server.port, request("HEAD", path))
    assert status == get_status == 200
    assert headers["Content-Type"] == get_headers["Content-Type"]
    assert int(headers["Content-Length"]) > 0
    assert body == b""
    if path != "/stats":  # its figures change between two requests
        assert headers["Content-Length"] == get_headers["Content-Length"] == str(len(get_body))


@pytest.mark.parametrize("path", ["/subscribe/id:h", "/nope"])
async def test_head_of_any_other_path_gets_the_refusal_without_its_body(
    server: ServerProcess, path: str
) -> None:
    """The answer has the headers it would have with a body (POST gets the same refusal, with it)."""
    post_status, post_headers, post_body = await raw_http(server.port, request("POST", path))
    status, headers, body = await raw_http(server.port, request("HEAD", path))
    assert (status, headers["Allow"]) == (post_status, post_headers["Allow"]) == (405, "GET")
    assert body == b""
    assert headers["Content-Length"] == post_headers["Content-Length"] == str(len(post_body))


async def test_head_on_the_admin_port_gets_no_body_whatever_the_path(start_server: StartServer) -> None:
    server = start_server("--admin-port", "0", "--admin-token", ADMIN_TOKEN)
    (admin,) = server.logged_so_far("admin_listening")
    for path, expected in (("/nope", 404), ("/stats", 401), ("/healthz", 200)):
        get_status, get_headers, get_body = await raw_http(admin["port"], request("GET", path))
        status, headers, body = await raw_http(admin["port"], request("HEAD", path))
        assert status == get_status == expected
        assert body == b""
        assert headers["Content-Length"] == get_headers["Content-Length"] == str(len(get_body))


async def test_the_websocket_path_takes_get_only(server: ServerProcess) -> None:
    for method in ("POST", "HEAD"):
        status, headers, _ = await raw_http(server.port, request(method, subscribe_path(unique("m"))))
        assert (status, headers["Allow"]) == (405, "GET")


# Origin


async def test_a_page_of_another_origin_is_refused(server: ServerProcess) -> None:
    url = server.url(subscribe_path(unique("o")))
    assert await refused_status(url, origin="https://evil.example") == 403
    assert await refused_status(url, origin=f"http://127.0.0.1:{server.port + 1}") == 403
    assert await refused_status(url, additional_headers={"Origin": "null"}) == 403


async def test_the_servers_own_origin_and_no_origin_are_accepted(server: ServerProcess) -> None:
    url = server.url(subscribe_path(unique("o")))
    await connects(url, origin=f"http://127.0.0.1:{server.port}")
    await connects(url)


async def test_allowed_origins_are_the_whole_list(start_server: StartServer) -> None:
    listed = start_server(
        "--allowed-origin", "https://chat.example.com", "--allowed-origin", "http://b.example"
    )
    url = listed.url(subscribe_path(unique("o")))
    await connects(url, origin="https://chat.example.com")
    await connects(url, origin="http://b.example:80")
    assert await refused_status(url, origin="https://evil.example") == 403
    # The own origin is judged by Host, which DNS rebinding lets a page choose: with a list it no
    # longer counts, whether Host names this server or a rebound name.
    assert await refused_status(url, origin=f"http://127.0.0.1:{listed.port}") == 403
    rebound = {"Host": f"evil.example:{listed.port}", "Origin": f"http://evil.example:{listed.port}"}
    status, _, body = await raw_http(listed.port, upgrade_request(subscribe_path(unique("o")), rebound))
    assert (status, body) == (403, b"Origin not allowed (--allowed-origin lists the ones that are)\n")
    anyone = start_server("--allowed-origin", "*")
    await connects(anyone.url(subscribe_path(unique("o"))), origin="https://evil.example")
    await connects(anyone.url(subscribe_path(unique("o"))), additional_headers={"Origin": "null"})


async def test_the_servers_own_origin_is_accepted_behind_a_proxy(
    start_server: StartServer, proxy_kind: str, tmp_path: Path
) -> None:
    """The proxy passes Host on as the browser sent it, port included, so a page it serves may connect."""
    server = start_server()
    proxy = ProxyProcess(proxy_kind, tmp_path / proxy_kind, [server.port]).start()
    try:
        url = proxy.url(subscribe_path(unique("p")))
        await connects(url, origin=f"http://127.0.0.1:{proxy.port}")
        assert await refused_status(url, origin=f"http://127.0.0.1:{server.port}") == 403
    finally:
        proxy.stop()


async def test_the_shipped_proxy_configs_log_requests_without_their_query(
    start_server: StartServer, proxy_kind: str, tmp_path: Path
) -> None:
    """A browser's token travels as ?token=: the proxy's access log keeps the path, not the query."""
    server = start_server()
    proxy = ProxyProcess(proxy_kind, tmp_path / proxy_kind, [server.port]).start()
    uid = unique("q")
    try:
        await connects(proxy.url(subscribe_path(uid) + "?token=secret-in-the-query"))
    finally:
        # A tunnelled request is logged when it ends; a stopped proxy has written everything.
        proxy.stop()
    log = proxy.output if proxy_kind == "haproxy" else proxy.dir / "nginx-access.log"
    text = log.read_text()
    assert f"GET {subscribe_path(uid)} HTTP/1.1" in text, text
    assert "secret-in-the-query" not in text


# Connection caps


async def test_past_max_connections_a_websocket_gets_503_while_health_answers(
    start_server: StartServer,
) -> None:
    server = start_server("--max-connections", "3", "--log-level", "debug")
    (listening,) = server.logged_so_far("server_listening")
    assert listening["max_connections"] == 3
    clients = [await open_client(server, unique("c")) for _ in range(3)]
    assert await refused_status(server.url(subscribe_path(unique("c")))) == 503
    assert (await http_get(server, "/healthz"))[0] == 200
    assert (await http_get(server, "/readyz"))[0] == 200
    # A slot freed by a close is taken by the next client.
    await clients[0].close()
    await logged(server, "connection_slot_released", open=2)
    clients[0] = await open_client(server, unique("c"))
    assert await refused_status(server.url(subscribe_path(unique("c")))) == 503
    for client in clients:
        await client.close()


async def test_a_handshake_that_fails_after_admission_frees_its_slot(start_server: StartServer) -> None:
    server = start_server("--max-connections", "1", "--log-level", "debug")
    # A valid path without the upgrade headers: admitted, then refused by the handshake (426).
    status, _, _ = await raw_http(server.port, request("GET", subscribe_path(unique("h"))))
    assert status == 426
    await logged(server, "connection_slot_released", open=0)
    client = await open_client(server, unique("h"))
    await client.close()


async def test_past_max_connections_per_ip_an_address_gets_429_and_others_connect(
    start_server: StartServer,
) -> None:
    server = start_server("--max-connections-per-ip", "2", "--trusted-proxy", "127.0.0.1")
    first = {"X-Forwarded-For": "198.51.100.1"}
    clients = [await open_client(server, unique("i"), additional_headers=first) for _ in range(2)]
    assert await refused_status(server.url(subscribe_path(unique("i"))), additional_headers=first) == 429
    clients.append(
        await open_client(server, unique("i"), additional_headers={"X-Forwarded-For": "198.51.100.2"})
    )
    # The proxy itself is one more address.
    clients.append(await open_client(server, unique("i")))
    for client in clients:
        await client.close()


async def test_at_the_cap_under_a_low_file_limit_health_still_answers(start_server: StartServer) -> None:
    """The cap is lowered to keep descriptors in reserve: /healthz and /readyz answer, every slot taken."""
    server = start_server("--max-connections", "1000", file_limit=FILE_LIMIT)
    (lowered,) = server.logged_so_far("max_connections_lowered")
    assert (lowered["requested"], lowered["max_connections"]) == (1000, CAP_UNDER_FILE_LIMIT)
    clients = [await open_client(server, unique("f")) for _ in range(CAP_UNDER_FILE_LIMIT)]
    assert await refused_status(server.url(subscribe_path(unique("f")))) == 503
    assert (await http_get(server, "/healthz"))[0] == 200
    assert (await http_get(server, "/readyz"))[0] == 200
    for client in clients:
        await client.close()


async def open_idle_sockets(port: int, sources: list[str]) -> list[socket.socket]:
    """Connect from each source address in turn and send nothing, as a slowloris does."""
    loop = asyncio.get_running_loop()
    sockets = []
    try:
        async with asyncio.timeout(scaled(20)):
            for source in sources:
                sock = socket.socket()
                sockets.append(sock)
                sock.setblocking(False)
                sock.bind((source, 0))
                await loop.sock_connect(sock, ("127.0.0.1", port))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


@pytest.mark.parametrize(
    ("flood", "sources"),
    [
        # One address: its own bound of pending handshakes evicts its oldest idle socket.
        ("one_address", ["127.0.0.1"] * 3 * FILE_LIMIT),
        # Many addresses, none past its own bound: the whole pool evicts its oldest.
        ("many_addresses", [f"127.0.{1 + i // 200}.{2 + i % 200}" for i in range(3 * FILE_LIMIT)]),
    ],
)
async def test_idle_sockets_past_the_file_limit_leave_health_and_clients_room(
    start_server: StartServer, flood: str, sources: list[str]
) -> None:
    """Sockets that connect and never send a request are counted from their accept, and evicted
    oldest first past the handshake pool's bounds: descriptors stay free, /healthz answers and a
    client connects, long before the open timeout would have dropped them."""
    server = start_server("--open-timeout", "60", "--max-handshakes-per-ip", "8", file_limit=FILE_LIMIT)
    (listening,) = server.logged_so_far("server_listening")
    assert listening["max_handshakes"] < len(sources)
    sockets = await open_idle_sockets(server.port, sources)
    try:
        (evicted, *_) = await logged(server, "handshake_evicted")
        assert evicted["listener"] == "public"
        if flood == "one_address":
            assert evicted["reason"] == "8 handshakes pending from this address"
        assert (await http_get(server, "/healthz"))[0] == 200
        assert (await http_get(server, "/readyz"))[0] == 200
        client = await open_client(server, unique("s"))
        await client.close()
    finally:
        for sock in sockets:
            sock.close()
    assert not server.logged_so_far("accept_failed")


async def test_idle_sockets_on_the_admin_port_leave_its_health_answering(start_server: StartServer) -> None:
    server = start_server("--open-timeout", "60", "--admin-port", "0", file_limit=FILE_LIMIT)
    (admin,) = server.logged_so_far("admin_listening")
    sockets = await open_idle_sockets(admin["port"], ["127.0.0.1"] * 3 * FILE_LIMIT)
    try:
        await logged(server, "handshake_evicted", listener="admin")
        assert (await url_status(f"http://127.0.0.1:{admin['port']}/healthz"))[0] == 200
        assert (await http_get(server, "/healthz"))[0] == 200
    finally:
        for sock in sockets:
            sock.close()
    assert not server.logged_so_far("accept_failed")


# Open timeout and failed accepts


async def test_a_connection_that_sends_nothing_is_dropped_after_the_open_timeout(
    start_server: StartServer,
) -> None:
    server = start_server("--open-timeout", "0.5")
    silent = await asyncio.open_connection("127.0.0.1", server.port)
    partial = await asyncio.open_connection("127.0.0.1", server.port)
    partial[1].write(b"GET /subscribe/id:slow HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    for reader, writer in (silent, partial):
        async with asyncio.timeout(scaled(5)):
            # Dropped with a reset rather than a FIN is dropped all the same.
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read() == b""
        writer.close()


async def connect_once(port: int) -> None:
    """Connect and close at once, sending nothing."""
    with socket.socket() as sock:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))


async def connect_in_bursts(port: int, bursts: int | None = None) -> None:
    """Bursts of 64 connections at once, `bursts` of them or until cancelled; failures are expected."""
    for _ in itertools.repeat(None) if bursts is None else range(bursts):
        await asyncio.gather(*(connect_once(port) for _ in range(64)), return_exceptions=True)


async def test_failed_accepts_at_the_file_limit_are_logged_once_a_second_with_a_count(
    start_server: StartServer,
) -> None:
    # A file limit below the server's reserve: one wakeup accepts more sockets than it leaves
    # free, before the handshake pool can evict any; so bursts of connections exhaust it.
    # On asyncio's loop, whose accept loop reports each failure; uvloop's (libuv) accepts and
    # closes at once what it has no descriptor for, and reports nothing (the next test).
    server = start_server("--open-timeout", "60", "--loop", "asyncio", file_limit=24)
    flood = asyncio.create_task(connect_in_bursts(server.port))
    try:
        events = await logged(server, "accept_failed", count=4, within=15)
    finally:
        flood.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flood
    stamps = [datetime.fromisoformat(event["timestamp"]) for event in events]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(stamps)]
    assert all(gap >= 0.95 for gap in gaps), gaps
    assert all(event["count"] >= 1 and "EMFILE" in event["error"] for event in events), events
    # Nothing of it went out unthrottled through asyncio's own logger.
    assert not [event for event in server.events if "out of system resource" in str(event.get("event"))]


async def test_on_uvloop_bursts_past_the_file_limit_leave_the_server_accepting(
    start_server: StartServer,
) -> None:
    """uvloop closes its listener on an accept error it is told of: the server must still accept after."""
    server = start_server("--open-timeout", "60", "--loop", "uvloop", file_limit=24)
    (listening,) = server.logged_so_far("server_listening")
    assert listening["loop"] == "uvloop"
    await connect_in_bursts(server.port, bursts=50)
    assert (await http_get(server, "/healthz"))[0] == 200
    client = await open_client(server, unique("u"))
    await client.close()


# Admin endpoints


async def test_an_admin_port_serves_stats_and_the_public_port_no_longer_does(
    start_server: StartServer,
) -> None:
    server = start_server("--admin-port", "0")
    (admin,) = server.logged_so_far("admin_listening")
    admin_url = f"http://127.0.0.1:{admin['port']}"
    status, body = await url_status(f"{admin_url}/stats")
    assert status == 200
    assert "connections" in json.loads(body)
    assert (await url_status(f"{admin_url}/healthz"))[0] == 200
    assert (await url_status(f"{admin_url}/readyz"))[0] == 200
    assert (await http_get(server, "/stats"))[0] == 404
    assert (await http_get(server, "/healthz"))[0] == 200
    # The admin port never upgrades.
    assert await refused_status(f"ws://127.0.0.1:{admin['port']}{subscribe_path(unique('a'))}") == 404


async def test_an_admin_token_guards_stats_only(start_server: StartServer) -> None:
    server = start_server("--admin-token", ADMIN_TOKEN)
    assert (await http_get(server, "/stats"))[0] == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert (await url_status(server.http_url("/stats"), wrong))[0] == 401
    status, body = await url_status(server.http_url("/stats"), {"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert status == 200
    assert "connections" in json.loads(body)
    assert (await http_get(server, "/healthz"))[0] == 200
    client = await open_client(server, unique("t"))
    await client.close()
