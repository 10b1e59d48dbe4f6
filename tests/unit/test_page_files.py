"""The browser page's files: `/` for browsers, /page/<name>, their types, validators and policy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import cast

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from minimess.adapters.websocket_server.http_endpoints import HttpEndpoints
from minimess.adapters.websocket_server.page_files import (
    CONTENT_SECURITY_POLICY,
    PageFiles,
    accepts_html,
)
from minimess.bootstrap.server import chat_page
from tests.unit.fakes import HandshakeConnection

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
FILES = {
    "index.html": b"<!doctype html><title>chat</title>",
    "main.js": b"export {};\n",
    "chat.css": b"body {}\n",
    "icon.svg": b"<svg/>",
}


@pytest.fixture
def page(tmp_path: Path) -> PageFiles:
    for name, body in FILES.items():
        (tmp_path / name).write_bytes(body)
    # Not the page's: Python, odd names, and a subdirectory are never served.
    (tmp_path / "__init__.py").write_text('"""package"""\n')
    (tmp_path / "Notes.JS").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "secret.js").write_text("x")
    return PageFiles.from_directory(tmp_path)


async def answer(page: PageFiles | None, path: str, method: str = "GET", **headers: str) -> Response | None:
    endpoints = HttpEndpoints(lambda: True, dict, index=True, page=page)
    connection = cast(ServerConnection, HandshakeConnection())
    request = Request(
        path, Headers([(name.replace("_", "-"), value) for name, value in headers.items()]), method
    )
    return endpoints.answer(connection, request)


async def respond(page: PageFiles | None, path: str, method: str = "GET", **headers: str) -> Response:
    response = await answer(page, path, method, **headers)
    assert response is not None
    return response


def test_no_chat_page_means_no_files() -> None:
    assert chat_page(wanted=False) is None


def test_only_plainly_named_files_of_the_directory_itself_are_served(page: PageFiles) -> None:
    assert page.names == ("chat.css", "icon.svg", "index.html", "main.js")


async def test_a_browser_asking_for_slash_gets_the_page_with_its_policy(page: PageFiles) -> None:
    response = await respond(page, "/", Accept=BROWSER)
    assert (response.status_code, response.body) == (200, FILES["index.html"])
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Content-Length"] == str(len(FILES["index.html"]))
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["Vary"] == "Accept"
    assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["ETag"])


def test_the_policy_allows_only_the_pages_own_files_and_no_markup_from_strings() -> None:
    directives = dict(directive.split(" ", 1) for directive in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == directives["style-src"] == directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["require-trusted-types-for"] == "'script'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY


@pytest.mark.parametrize(
    "accept", [None, "*/*", "text/plain", "text/html;q=0", "application/json, text/html; q=0.0"]
)
async def test_anything_but_a_browser_gets_the_plain_text_page_at_slash(
    page: PageFiles, accept: str | None
) -> None:
    response = await respond(page, "/", **({} if accept is None else {"Accept": accept}))
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Vary"] == "Accept"
    assert b"in a browser to chat" in response.body


async def test_without_the_page_slash_is_plain_text_and_page_paths_are_not_ours() -> None:
    response = await respond(None, "/", Accept=BROWSER)
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "Vary" not in response.headers
    assert b"browser" not in response.body
    assert await answer(None, "/page/main.js") is None


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("main.js", "text/javascript; charset=utf-8"),
        ("chat.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ],
)
async def test_each_file_has_its_content_type_and_the_policy(
    page: PageFiles, name: str, content_type: str
) -> None:
    response = await respond(page, f"/page/{name}?v=2")
    assert (response.status_code, response.body) == (200, FILES[name])
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


NOT_SERVED = ["/page/index.html", "/page/nope.js", "/page/__init__.py", "/page/Notes.JS",
              "/page/sub/secret.js", "/page/../__init__.py", "/page/", "/page/%2e%2e/x.js"]  # fmt: skip


@pytest.mark.parametrize("path", NOT_SERVED)
async def test_anything_else_under_page_is_404_with_what_was_asked(page: PageFiles, path: str) -> None:
    response = await respond(page, path)
    assert response.status_code == 404
    assert response.body.startswith(b"no such file of the page: ")


async def test_an_unchanged_file_is_304_without_a_body_and_a_changed_one_200(page: PageFiles) -> None:
    etag = (await respond(page, "/page/main.js")).headers["ETag"]
    for validator in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = await respond(page, "/page/main.js", If_None_Match=validator)
        assert (response.status_code, response.body) == (304, b""), validator
        assert response.headers["ETag"] == etag
        assert "Content-Length" not in response.headers
    assert (await respond(page, "/page/main.js", If_None_Match='"other"')).status_code == 200


async def test_head_has_the_gets_headers_and_other_methods_are_refused(page: PageFiles) -> None:
    get = await respond(page, "/page/main.js")
    head = await respond(page, "/page/main.js", "HEAD")
    assert (head.status_code, head.body, head.headers["Content-Length"]) == (
        200,
        b"",
        get.headers["Content-Length"],
    )
    refused = await respond(page, "/page/main.js", "POST")
    assert (refused.status_code, refused.headers["Allow"]) == (405, "GET, HEAD")


def test_accept_names_html_only_with_a_positive_weight() -> None:
    assert accepts_html(Headers([("Accept", BROWSER)]))
    assert accepts_html(Headers([("Accept", "TEXT/HTML; Q=0.5")]))
    assert not accepts_html(Headers([("Accept", "text/html;q=0")]))
    assert not accepts_html(Headers([("Accept", "text/html;q=x")]))
    assert not accepts_html(Headers([("Accept", "text/htmlx")]))
    assert not accepts_html(Headers())


def test_every_file_the_shipped_page_names_is_one_it_serves() -> None:
    """index.html's scripts and styles, and every module's imports, are files of the package."""
    page = chat_page(wanted=True)  # the files the server is wired with
    assert page is not None
    assert page.has_index()
    response = page_file(page, "index.html")
    named = set(re.findall(r'(?:src|href)="page/([^"]+)"', response))
    for name in page.names:
        if name.endswith(".js"):
            named |= set(re.findall(r"""from\s+["']\./([^"']+)["']""", page_file(page, name)))
    assert named <= set(page.names)


def page_file(page: PageFiles, name: str) -> str:
    response = page.answer(Request(f"/page/{name}", Headers()), name)
    assert response is not None
    return response.body.decode()
