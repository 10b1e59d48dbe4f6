"""A real server serves the browser page from its package: `/` for browsers, /page/<file>, 304s."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from tests.integration.server_process import ServerProcess
from tests.integration.wire import http_request

StartServer = Callable[..., ServerProcess]
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


async def get(server: ServerProcess, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    return await asyncio.to_thread(http_request, server.http_url(path), "GET", None, named)


async def test_a_browser_gets_the_page_and_each_file_it_names_and_curl_the_text(
    server: ServerProcess,
) -> None:
    status, headers, page = await get(server, "/", Accept=BROWSER)
    assert (status, headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert "require-trusted-types-for 'script'" in headers["Content-Security-Policy"]
    for name in re.findall(r'(?:src|href)="page/([^"]+)"', page.decode()):
        status, headers, _ = await get(server, f"/page/{name}")
        assert status == 200, name
        assert headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, text = await get(server, "/", Accept="*/*")
    assert (status, headers["Content-Type"], headers["Vary"]) == (200, "text/plain; charset=utf-8", "Accept")
    assert f"Open http://127.0.0.1:{server.port}/ in a browser" in text.decode()


async def test_a_file_asked_again_with_its_etag_is_304_and_an_unknown_one_404(server: ServerProcess) -> None:
    status, headers, _ = await get(server, "/", Accept=BROWSER)
    assert status == 200
    status, again, body = await get(server, "/", Accept=BROWSER, If_None_Match=headers["ETag"])
    assert (status, body, again["ETag"]) == (304, b"", headers["ETag"])
    status, _, body = await get(server, "/page/../pyproject.toml")
    assert (status, body) == (404, b"no such file of the page: '../pyproject.toml'\n")


async def test_no_chat_page_leaves_slash_plain_text_for_browsers_too(start_server: StartServer) -> None:
    server = start_server("--tick", "0", "--no-chat-page")
    status, headers, text = await get(server, "/", Accept=BROWSER)
    assert (status, headers["Content-Type"]) == (200, "text/plain; charset=utf-8")
    assert b"browser" not in text
    assert (await get(server, "/page/chat.css"))[0] == 404
    (listening,) = server.logged_so_far("server_listening")
    assert "page" not in listening
