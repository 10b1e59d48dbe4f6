"""ClientSettings: the server URLs, names and numbers it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from minimess.app.settings import ClientSettings


@pytest.mark.parametrize(
    "url",
    [
        "ws://127.0.0.1:8080",
        "ws://localhost",
        "wss://chat.example.com:443",
        "ws://laptop:1",
        "ws://laptop:65535",
        "ws://[::1]:8080",
        "ws://127.0.0.1:8080/",
    ],
)
def test_a_ws_or_wss_url_with_a_host_is_a_server(url: str) -> None:
    assert ClientSettings(uid="bob", server=url).server == url


FORM = "expected ws://host[:port] or wss://host[:port]"
PORT = "the port must be a number from 1 to 65535; " + FORM


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8080", FORM),
        ("tcp://127.0.0.1:8080", FORM),
        ("127.0.0.1:8080", FORM),
        ("", FORM),
        ("ws://", FORM),
        ("ws://:8080", FORM),
        ("ws:///subscribe", FORM),
        ("ws://127.0.0.1:0", FORM),
        # The link appends its path to the URL: a query or a fragment, even empty, would break it.
        ("ws://127.0.0.1:8080?x=1", FORM),
        ("ws://127.0.0.1:8080/#top", FORM),
        ("wss://h/?", FORM),
        ("ws://127.0.0.1:8080#", FORM),
        ("ws://127.0.0.1:65536", PORT),
        ("ws://127.0.0.1:port", PORT),
        ("ws://h:-1", PORT),
        # urlsplit reads an empty port as none: the client would try ws://127.0.0.1:: for ever.
        ("ws://127.0.0.1:", PORT),
        ("ws://[::1]:", PORT),
    ],
)
def test_anything_but_ws_or_wss_host_and_port_is_refused_in_one_line_saying_why(
    url: str, reason: str
) -> None:
    with pytest.raises(ValueError, match="invalid server URL") as raised:
        ClientSettings(uid="bob", server=url)
    assert str(raised.value).startswith(f"invalid server URL {url!r}: {reason}")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "instead"),
    [
        (
            "ws://127.0.0.1:8080/subscribe/id:bob/topic:room",
            "give --server ws://127.0.0.1:8080 --topic room (the uid is --uid;",
        ),
        (
            "wss://h:9/subscribe/id:bob/topic:a@e1:3/topic:b/",
            "give --server wss://h:9 --topic a --topic b (the uid is --uid;",
        ),
        ("ws://h/subscribe/id:bob", "give --server ws://h (the uid is --uid;"),
        ("ws://h:8080/chat", "give --server ws://h:8080 (the client adds the path itself)"),
        ("ws://h:8080//", "give --server ws://h:8080 (the client adds the path itself)"),
    ],
)
def test_a_url_with_a_path_is_refused_saying_what_to_give_instead(url: str, instead: str) -> None:
    """The client appends its own path: one in --server would be sent too, and every handshake refused."""
    with pytest.raises(ValueError, match="it has a path") as raised:
        ClientSettings(uid="bob", server=url)
    assert str(raised.value).startswith(f"invalid server URL {url!r}: it has a path; {instead}")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("changes", "error"),
    [({"uid": "bad/uid"}, "invalid uid"), ({"topics": ["news", "bad/topic"]}, "invalid topic")],
)
def test_the_uid_and_every_topic_must_be_valid_names(changes: dict[str, Any], error: str) -> None:
    """The names follow the server's rules (test_model); a ValueError, so `minimess client` exits 2."""
    with pytest.raises(ValueError, match=error):
        ClientSettings(**{"uid": "bob", **changes})


def test_topics_are_kept_in_the_order_given() -> None:
    settings: dict[str, Any] = {"uid": "bob", "topics": ["news", "bob:mala:zorfa"]}
    assert ClientSettings(**settings).topics == ("news", "bob:mala:zorfa")


@pytest.mark.parametrize(
    ("name", "smallest", "refused"),
    [("retry_first", 0.001, 0), ("retry_cap", 0.001, 0), ("ack_timeout", 0.001, -0.5), ("queue_size", 1, 0)],
)
def test_delays_and_timeouts_must_be_positive_and_the_queue_hold_a_line(
    name: str, smallest: Any, refused: Any
) -> None:
    assert getattr(ClientSettings(uid="bob", **{name: smallest}), name) == smallest
    with pytest.raises(ValueError, match=name):
        ClientSettings(uid="bob", **{name: refused})
