"""ClientSettings: the documented defaults, and the server URL, uid and topics it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from minimess.app.settings import ClientSettings
from minimess.domain.errors import InvalidName


def test_defaults_are_the_documented_ones() -> None:
    """Only the uid is required; the rest defaults as docs/client.md says."""
    settings = ClientSettings(uid="afrozalm")
    assert settings.server == "ws://127.0.0.1:8080"
    assert settings.topics == ()
    assert settings.log_file is None
    assert settings.print_only is False
    assert (settings.retry_first, settings.retry_cap) == (0.5, 30)
    assert settings.ack_timeout == 10
    assert settings.queue_size == 100


def test_the_transcript_defaults_to_uid_dot_mess() -> None:
    """Without --log-file the transcript is `<uid>.mess` in the current directory."""
    assert ClientSettings(uid="afrozalm").transcript_path == "afrozalm.mess"
    assert ClientSettings(uid="bob.b-2").transcript_path == "bob.b-2.mess"


def test_a_log_file_replaces_the_default_transcript() -> None:
    """--log-file names the transcript file."""
    assert ClientSettings(uid="afrozalm", log_file="/tmp/chat.log").transcript_path == "/tmp/chat.log"


@pytest.mark.parametrize(
    "url",
    [
        "ws://127.0.0.1:8080",
        "ws://localhost",
        "wss://chat.example.com",
        "wss://chat.example.com:443",
        "ws://laptop:1",
        "ws://laptop:65535",
        "ws://[::1]:8080",
        "ws://127.0.0.1:8080/",
    ],
)
def test_ws_and_wss_urls_with_a_host_are_accepted(url: str) -> None:
    """A ws:// or wss:// URL with a host and an optional valid port is a server."""
    assert ClientSettings(uid="afrozalm", server=url).server == url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "https://chat.example.com",
        "tcp://127.0.0.1:8080",
        "127.0.0.1:8080",
        "localhost",
        "",
        "ws://",
        "ws://:8080",
        "ws:///subscribe",
    ],
)
def test_a_url_without_a_ws_scheme_or_host_is_refused(url: str) -> None:
    """Anything but ws://host or wss://host is refused with a message naming the URL and the form."""
    with pytest.raises(ValueError, match="invalid server URL") as raised:
        ClientSettings(uid="afrozalm", server=url)
    message = str(raised.value)
    assert repr(url) in message
    assert "ws://host[:port]" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "url",
    ["ws://127.0.0.1:0", "ws://127.0.0.1:65536", "ws://127.0.0.1:99999", "ws://127.0.0.1:port", "ws://h:-1"],
)
def test_a_bad_port_is_refused(url: str) -> None:
    """Port 0, a port past 65535 or a port that is no number is refused, as a ValueError."""
    with pytest.raises(ValueError, match="invalid server URL") as raised:
        ClientSettings(uid="afrozalm", server=url)
    assert repr(url) in str(raised.value)


@pytest.mark.parametrize(
    "url", ["ws://127.0.0.1:8080?x=1", "ws://127.0.0.1:8080/#top", "wss://h/?", "ws://127.0.0.1:8080#"]
)
def test_a_query_or_fragment_is_refused(url: str) -> None:
    """A query or fragment, even an empty one, is refused: the link appends its path after the URL."""
    with pytest.raises(ValueError, match="invalid server URL"):
        ClientSettings(uid="afrozalm", server=url)


@pytest.mark.parametrize("uid", ["", "has space", "bad/uid", "x" * 65, "héllo", "a:b"])
def test_an_invalid_uid_is_refused(uid: str) -> None:
    """The uid follows the server's rule `[A-Za-z0-9_.-]{1,64}`; the error is a ValueError naming it."""
    with pytest.raises(InvalidName, match="invalid uid") as raised:
        ClientSettings(uid=uid)
    assert isinstance(raised.value, ValueError)


def test_the_longest_valid_uid_is_accepted() -> None:
    """A uid of 64 allowed characters is fine."""
    assert ClientSettings(uid="x" * 64).uid == "x" * 64


def test_valid_topics_are_kept_in_order() -> None:
    """--topic values are kept as given."""
    settings = ClientSettings(uid="afrozalm", topics=("news", "afrozalm:mala:zorfa"))
    assert settings.topics == ("news", "afrozalm:mala:zorfa")


@pytest.mark.parametrize("topic", ["", "bad/topic", "two words", "x" * 129])
def test_an_invalid_topic_is_refused(topic: str) -> None:
    """Every --topic must be a valid topic name; the error is a ValueError naming it."""
    with pytest.raises(InvalidName, match="invalid topic"):
        ClientSettings(uid="afrozalm", topics=("news", topic))


@pytest.mark.parametrize(
    "changes",
    [
        {"retry_first": 0},
        {"retry_first": -1},
        {"retry_cap": 0},
        {"ack_timeout": 0},
        {"ack_timeout": -0.5},
        {"queue_size": 0},
    ],
)
def test_out_of_range_numbers_are_refused(changes: dict[str, Any]) -> None:
    """Delays and timeouts must be positive, and the queue must hold at least one line."""
    with pytest.raises(ValueError, match=next(iter(changes))):
        ClientSettings(uid="afrozalm", **changes)


def test_the_smallest_allowed_numbers_are_accepted() -> None:
    """Tiny positive delays and a queue of one line are valid."""
    settings = ClientSettings(
        uid="afrozalm", retry_first=0.001, retry_cap=0.001, ack_timeout=0.001, queue_size=1
    )
    assert settings.queue_size == 1
