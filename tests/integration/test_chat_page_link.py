"""The chat page's link in a real Chromium: a fresh token after a refusal keeps what waits, a reload
keeps the joined rooms and recovers them from their positions, and a silent server is noticed."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from websockets.sync.client import connect as connect_blocking

from minimess.adapters.jwt_tokens import HS256Tokens
from minimess.domain.model import Uid
from tests.integration.browser_process import PageOpener
from tests.integration.chat_page import ChatPage, expect_timeout
from tests.integration.server_process import ServerProcess
from tests.integration.wire import publish_blocking, subscribe_path, unique
from tests.timeouts import scaled

pytestmark = pytest.mark.integration

SECRET = b"chat-page-link-test-secret-of-48-bytes-01234567"
# How long the first token of the refusal test lasts: the page connects, joins and reads a message
# within it, then the server closes the connection and refuses the token on the next attempt.
SHORT_LIFETIME = timedelta(seconds=scaled(4))


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with authentication on and a tick every second to wait on."""
    secret = tmp_path_factory.mktemp("auth") / "secret"
    secret.write_bytes(SECRET + b"\n")
    process = ServerProcess("--tick", "1", "--auth-secret-file", str(secret)).start()
    yield process
    process.stop()


def token(uid: str, lifetime: timedelta = timedelta(hours=1)) -> str:
    return HS256Tokens(SECRET).mint(Uid(uid), lifetime)


def publish_with_token(server: ServerProcess, uid: str, topic: str, body: str) -> None:
    """Publish `body` on `topic` as `uid`, with a token, and wait for its ack."""
    url = server.url(subscribe_path(uid) + f"?token={token(uid)}")
    with connect_blocking(url, open_timeout=scaled(10)) as connection:
        assert json.loads(connection.recv(timeout=scaled(10)))["type"] == "success"
        connection.send(json.dumps({"type": "pub", "topic": topic, "body": body, "ref": "r"}))
        while (frame := json.loads(connection.recv(timeout=scaled(10))))["type"] == "time":
            pass
        assert frame["type"] == "ack", frame


def test_a_line_typed_while_refused_goes_once_after_connect_with_a_fresh_token_and_positions_stay(
    auth_server: ServerProcess, open_page: PageOpener
) -> None:
    """Connected with a token that expires: the page is refused (401) on its next attempt; a line typed
    then waits; Connect with a fresh token sends it once, and what came meanwhile is recovered from
    the room's position (what the page had is not delivered again)."""
    uid, topic = unique("alice"), unique("room")
    url = rf"127\.0\.0\.1:{auth_server.port}/subscribe/id:{re.escape(uid)}[/?][^ ']*"
    open_page.console.allow(rf"^error: WebSocket connection to 'ws://{url}' failed: .* \(at ")
    open_page.console.allow(rf"^error: Failed to load resource: .* status of 401 .*\(at http://{url}\)$")
    chat = ChatPage(open_page()).open(auth_server.http_url(""), uid, token(uid, SHORT_LIFETIME))
    chat.expect_state("connected", f"as {uid}")
    chat.join(topic)
    publish_with_token(auth_server, "bob", topic, "before")
    chat.expect_messages([("bob", "before")])

    chat.expect_state("refused", "HTTP 401", within=SHORT_LIFETIME.total_seconds() + 10)
    expect(chat.page.locator("form#login")).to_be_visible()
    chat.send("typed while refused")
    expect(chat.page.locator("ol#messages > li.message.pending")).to_have_count(1)
    publish_with_token(auth_server, "bob", topic, "while refused")

    with connect_blocking(
        auth_server.url(subscribe_path("watcher", topic) + f"?token={token('watcher')}"),
        open_timeout=scaled(10),
    ) as watcher:
        assert json.loads(watcher.recv(timeout=scaled(10)))["type"] == "success"
        chat.page.locator("input#token").fill(token(uid))
        chat.page.locator("button#connect").click()
        chat.expect_state("connected", f"as {uid}")
        chat.expect_echoed()
        chat.expect_messages([("bob", "before"), ("bob", "while refused"), (uid, "typed while refused")])
        # Once: the watcher sees it, then two ticks go by without another copy.
        bodies, ticks = [], 0
        while ticks < 2 or "typed while refused" not in bodies:
            frame = json.loads(watcher.recv(timeout=scaled(10)))
            if frame["type"] == "message":
                bodies.append(frame["body"])
            ticks += frame["type"] == "time" and "typed while refused" in bodies
    assert bodies == ["typed while refused"]


def test_a_reload_keeps_the_joined_rooms_and_recovers_them_from_their_positions(
    server: ServerProcess, open_page: PageOpener
) -> None:
    """Two rooms joined, a message read in one; the page goes away, a message comes meanwhile; back at
    `?uid=` the rooms are there again, and the room shows what came after its position, not before."""
    uid, news, lobby = unique("alice"), unique("news"), unique("lobby")
    chat = ChatPage(open_page()).open(server.http_url(""), uid)
    chat.expect_state("connected", f"as {uid}")
    chat.join(news)
    chat.join(lobby)
    chat.attach(news)
    publish_blocking(server.url(""), "bob", news, "read before the reload")
    chat.expect_messages([("bob", "read before the reload")])

    address = chat.page.url
    chat.page.goto("about:blank")
    publish_blocking(server.url(""), "bob", news, "came while away")
    chat.page.goto(address)
    chat.expect_state("connected", f"as {uid}")
    expect(chat.page.locator("#rooms li[data-topic]")).to_have_count(2, timeout=expect_timeout(None))
    expect(chat.room(lobby)).to_be_visible()
    chat.attach(news)
    chat.expect_messages([("bob", "came while away")])
    assert chat.notices() == []
    publish_blocking(server.url(""), "bob", lobby, "lobby still joined")
    chat.attach(lobby)
    chat.expect_messages([("bob", "lobby still joined")])


def test_a_frozen_server_is_noticed_by_its_silence_and_the_page_comes_back_when_it_answers(
    start_server: Callable[..., ServerProcess], open_page: PageOpener
) -> None:
    """A server with a tick every second stops answering (SIGSTOP) while the page is idle: after 10 s
    of silence (three ticks, and never less than 10 s) the page says so and connects again; once the
    server answers again (SIGCONT) the page is connected and chats."""
    server = start_server("--tick", "1")
    uid, topic = unique("alice"), unique("room")
    # The page gives up on a handshake the frozen server never answers, which Chromium notes.
    open_page.console.allow(
        rf"^warning: WebSocket connection to 'ws://127\.0\.0\.1:{server.port}/subscribe/id:{re.escape(uid)}/"
        r"[^ ']*' failed: WebSocket is closed before the connection is established\. \(at "
    )
    chat = ChatPage(open_page()).open(server.http_url(""), uid)
    chat.join(topic)
    chat.expect_state("connected", f"as {uid}")
    # Two ticks have shown the server's pace: the page's watch is on.
    wait_for_time_frames(server, 2)
    server.signal(signal.SIGSTOP)
    try:
        # Waiting to reconnect, or its attempt hanging on the frozen server: either says why.
        chat.expect_state(re.compile("waiting|connecting"), "no answer from the server in 10 s", within=40)
    finally:
        server.signal(signal.SIGCONT)
    chat.expect_state("connected", f"as {uid}", within=30)
    chat.send("back")
    chat.expect_messages([(uid, "back")])


def wait_for_time_frames(server: ServerProcess, count: int) -> None:
    """Wait until a connection of its own has had `count` `time` frames from `server`."""
    with connect_blocking(
        server.url(subscribe_path(unique("watcher"))), open_timeout=scaled(10)
    ) as connection:
        seen = 0
        while seen < count:
            seen += json.loads(connection.recv(timeout=scaled(10)))["type"] == "time"
