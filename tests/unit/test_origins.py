"""Which pages may open a WebSocket: none but the server's own origin, unless --allowed-origin lists them."""

from __future__ import annotations

import pytest
from websockets.datastructures import Headers
from websockets.http11 import Request

from minimess.adapters.websocket_server.origin_names import normalise_origin, parse_allowed_origins
from minimess.adapters.websocket_server.origins import OriginPolicy
from minimess.adapters.websocket_server.settings import WebSocketSettings

PATH = "/subscribe/id:alice"


def request(host: str | None = "chat.example.com", *origins: str) -> Request:
    headers = Headers()
    if host is not None:
        headers["Host"] = host
    for origin in origins:
        headers["Origin"] = origin
    return Request(PATH, headers)


@pytest.mark.parametrize(
    ("origin", "normalised"),
    [
        ("https://chat.example.com", "https://chat.example.com"),
        ("HTTPS://Chat.Example.COM:443", "https://chat.example.com"),
        ("http://chat.example.com:80/", "http://chat.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_an_origin_is_scheme_host_and_port_with_default_ports_left_out(origin: str, normalised: str) -> None:
    assert normalise_origin(origin) == normalised


@pytest.mark.parametrize(
    "origin",
    [
        "chat.example.com",
        "ftp://chat.example.com",
        "https://",
        "https://chat.example.com/room",
        "http://h:99999",
    ],
)
def test_what_is_not_an_origin_is_refused(origin: str) -> None:
    with pytest.raises(ValueError, match="invalid origin"):
        normalise_origin(origin)


def test_allowed_origins_are_normalised_and_a_bad_one_is_named() -> None:
    assert parse_allowed_origins(["https://A.example:443", "*", "https://a.example"]) == (
        "https://a.example",
        "*",
    )
    with pytest.raises(ValueError, match=r"invalid origin 'a\.example'"):
        WebSocketSettings(allowed_origins=("a.example",))


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("chat.example.com", "https://chat.example.com"),
        ("chat.example.com", "http://chat.example.com"),
        ("Chat.Example.com:443", "https://chat.example.com"),
        ("127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("[::1]:8080", "http://[::1]:8080"),
    ],
    ids=["default-port", "http", "explicit-default-port", "port", "ipv6"],
)
def test_by_default_only_the_servers_own_origin_is_accepted(host: str, origin: str) -> None:
    """The page's origin names the host and port the request was sent to (its Host header)."""
    assert OriginPolicy().refusal(request(host, origin)) is None


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("chat.example.com", "https://evil.example"),
        ("127.0.0.1:8080", "http://127.0.0.1:8081"),
        ("127.0.0.1:8080", "http://127.0.0.1"),
        ("chat.example.com", "https://chat.example.com:8443"),
        (None, "https://chat.example.com"),
        ("chat.example.com", "null"),
        ("chat.example.com", "not an origin"),
    ],
    ids=[
        "other-host",
        "other-port",
        "default-port-for-a-port",
        "port-for-default",
        "no-host",
        "null",
        "malformed",
    ],
)
def test_another_origin_is_refused(host: str | None, origin: str) -> None:
    assert OriginPolicy().refusal(request(host, origin)) is not None


def test_a_request_without_origin_is_no_browser_page_and_is_accepted() -> None:
    assert OriginPolicy().refusal(request("chat.example.com")) is None


def test_two_origin_headers_are_refused() -> None:
    refusal = OriginPolicy().refusal(request("a.example", "https://a.example", "https://a.example"))
    assert refusal == "more than one Origin header"


def test_allowed_origins_are_the_whole_list() -> None:
    policy = OriginPolicy(parse_allowed_origins(["https://chat.example.com"]))
    assert policy.refusal(request("ws.example.com", "https://chat.example.com:443")) is None
    assert policy.refusal(request("ws.example.com", "https://evil.example")) is not None
    assert policy.refusal(request("ws.example.com", "null")) is not None
    # The Host header no longer vouches for an origin: a rebound name sends its own.
    assert policy.refusal(request("ws.example.com", "https://ws.example.com")) == (
        "Origin not allowed (--allowed-origin lists the ones that are)"
    )
    assert policy.refusal(request("evil.example:8080", "http://evil.example:8080")) is not None


def test_a_repeated_origin_header_is_refused_even_when_any_origin_is_allowed() -> None:
    policy = OriginPolicy(parse_allowed_origins(["*"]))
    refusal = policy.refusal(request("a.example", "https://a.example", "https://b.example"))
    assert refusal == "more than one Origin header"


def test_any_origin_with_a_star_null_included() -> None:
    policy = OriginPolicy(parse_allowed_origins(["*"]))
    assert policy.refusal(request("ws.example.com", "https://evil.example")) is None
    assert policy.refusal(request("ws.example.com", "null")) is None
