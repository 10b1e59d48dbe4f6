"""The chat page served at `/`, in a real Chromium, against real `minimess serve` processes."""

from __future__ import annotations

import itertools
import json
import re
import signal
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, WebSocketRoute, expect
from websockets.sync.client import connect as connect_blocking

from minimess.adapters.jwt_tokens import HS256Tokens
from minimess.domain.model import Uid
from tests.integration.browser_process import PageOpener
from tests.integration.chat_page import ChatPage, expect_timeout
from tests.integration.client_process import TerminalClient, read_lines
from tests.integration.proxy_process import ProxyProcess
from tests.integration.server_process import ServerProcess
from tests.integration.wire import publish_blocking, subscribe_path, unique
from tests.timeouts import scaled

pytestmark = pytest.mark.integration

StartServer = Callable[..., ServerProcess]
StartClient = Callable[..., TerminalClient]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-output" / "screenshots"
PHONE = (390, 844)
DESKTOP = (1280, 800)
SECRET = b"chat-page-test-secret-of-48-bytes-0123456789abcd"
OTHER_SECRET = b"not-the-server-secret-of-48-bytes-0123456789abcd"
# `(@sender): body` at the end of a terminal client's transcript line.
TRANSCRIPT_MESSAGE = re.compile(r"\(@(?P<sender>[^)]+)\): (?P<body>.*)$")
# The limit of the server in the size test, in bytes of the whole `pub` frame.
MAX_MESSAGE_BYTES = 1024


def base_url(server: ServerProcess | ProxyProcess) -> str:
    """http://host:port of a server or a proxy, where the page is."""
    return server.http_url("")


def connected_page(
    open_page: PageOpener, server: ServerProcess | ProxyProcess, uid: str, topic: str
) -> ChatPage:
    """A page open as `uid`, connected, with `topic` joined and attached."""
    chat = ChatPage(open_page()).open(base_url(server), uid)
    chat.expect_state("connected", f"as {uid}")
    chat.join(topic)
    return chat


def transcript_messages(client: TerminalClient) -> list[tuple[str, str]]:
    """(from, body) of each message line in a terminal client's transcript."""
    matches = (TRANSCRIPT_MESSAGE.search(line) for line in read_lines(client.transcript))
    return [(match["sender"], match["body"]) for match in matches if match]


def allow_failed_connections(open_page: PageOpener, port: int, uid: str, websocket: str, fetch: str) -> None:
    """Expect what Chromium logs when a WebSocket handshake of `uid` to `port` fails (`websocket`, a
    regex of its reason) and when the fetch() asking why fails (`fetch`, a regex)."""
    url = rf"127\.0\.0\.1:{port}/subscribe/id:{re.escape(uid)}[/?][^ ']*"
    open_page.console.allow(rf"^error: WebSocket connection to 'ws://{url}' failed: {websocket} \(at ")
    open_page.console.allow(rf"^error: Failed to load resource: {fetch} \(at http://{url}\)$")


def test_two_pages_and_a_terminal_client_chat_in_one_room_and_see_the_same_order(
    server: ServerProcess, open_page: PageOpener, start_client: StartClient
) -> None:
    """Two pages and a terminal client in one room: each sees every message, all in the same order."""
    topic = unique("room")
    alice = connected_page(open_page, server, "alice", topic)
    bob = connected_page(open_page, server, "bob", topic)
    carol = start_client("carol", server)
    carol.line(f"attach {topic}")
    carol.expect_status(f"attached to {topic}")

    # Everyone is in the room once everyone has the first message.
    alice.send("first")
    for page in (alice, bob):
        page.expect_messages([("alice", "first")])
    carol.wait_for_line(lambda line: line.endswith("(@alice): first"))

    # Then three at once: whatever order the server puts them in, everyone sees that one.
    bob.send("from bob")
    carol.line("from carol")
    alice.send("from alice")
    for page in (alice, bob):
        expect(page.message_lines).to_have_count(4, timeout=expect_timeout(None))
        page.expect_echoed()
    carol.wait_for_line(lambda line: line.endswith("(@alice): from alice"))
    carol.wait_for_line(lambda line: line.endswith("(@bob): from bob"))
    carol.wait_for_line(lambda line: line.endswith("(@carol): from carol"))
    order = transcript_messages(carol)
    assert sorted(order) == sorted(
        [("alice", "first"), ("bob", "from bob"), ("carol", "from carol"), ("alice", "from alice")]
    )
    for page in (alice, bob):
        page.expect_messages(order)


def test_markup_in_a_body_shows_as_text_and_runs_nothing_and_bidi_and_zero_width_show_as_escapes(
    server: ServerProcess, open_page: PageOpener
) -> None:
    """`<img onerror>` and `<script>` bodies show as those characters and run nothing; U+202E and U+200B
    show as `\\u202e` and `\\u200b`, on the sender's page and on another's."""
    topic = unique("room")
    image = '<img src=x onerror="window.__pwned=1">'
    script = "<script>window.__pwned=2</script>"
    bidi = "abc\u202edef\u200bghi"
    alice = connected_page(open_page, server, "alice", topic)
    bob = connected_page(open_page, server, "bob", topic)
    for body in (image, script):
        alice.send(body)
    publish_blocking(server.url(""), "mallory", topic, bidi, f"{image} from mallory")
    shown = [
        ("alice", image),
        ("alice", script),
        ("mallory", "abc\\u202edef\\u200bghi"),
        ("mallory", f"{image} from mallory"),
    ]
    for page in (alice, bob):
        page.expect_messages(shown)
        assert page.page.locator("#messages img, #messages script").count() == 0
        assert page.page.evaluate("typeof window.__pwned") == "undefined"


def test_a_killed_memory_server_restarted_on_its_port_the_page_reconnects_and_says_messages_may_be_missed(
    start_server: StartServer, open_page: PageOpener
) -> None:
    """SIGKILL and a restart on the same port: the page reconnects by itself, says in the room that it
    may have missed messages, and chatting works again."""
    server = start_server("--tick", "0")
    port = server.port
    # While the server is down, and between its start and its listening.
    refused = "net::ERR_CONNECTION_REFUSED"
    allow_failed_connections(
        open_page, port, "alice", f"Error in connection establishment: {refused}", refused
    )
    topic = unique("room")
    alice = connected_page(open_page, server, "alice", topic)
    alice.send("before")
    alice.expect_messages([("alice", "before")])
    alice.expect_echoed()
    assert alice.notices() == []

    server.signal(signal.SIGKILL)
    server.wait(scaled(10))
    alice.expect_state(re.compile("^(waiting|connecting)$"))
    server.start(port=port)
    alice.expect_state("connected", "as alice", within=15)
    expect(alice.notice_lines).to_have_count(1, timeout=expect_timeout(None))
    expect(alice.notice_lines).to_contain_text(["you may have missed messages"])

    alice.send("after")
    alice.expect_messages([("alice", "before"), ("alice", "after")])
    publish_blocking(server.url(""), "bob", topic, "welcome back")
    alice.expect_messages([("alice", "before"), ("alice", "after"), ("bob", "welcome back")])


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with authentication on, refusals logged (`-v`), and a tick every second to wait on."""
    secret = tmp_path_factory.mktemp("auth") / "secret"
    secret.write_bytes(SECRET + b"\n")
    process = ServerProcess("-v", "--tick", "1", "--auth-secret-file", str(secret)).start()
    yield process
    process.stop()


def token(uid: str, secret: bytes = SECRET) -> str:
    return HS256Tokens(secret).mint(Uid(uid), timedelta(hours=1))


def wait_ticks(server: ServerProcess, uid: str, count: int) -> None:
    """Wait until a connection of `uid` has had `count` `time` frames: over count - 1 ticks have gone by."""
    url = server.url(subscribe_path(uid) + f"?token={token(uid)}")
    with connect_blocking(url, open_timeout=scaled(10)) as connection:
        seen = 0
        while seen < count:
            seen += json.loads(connection.recv(timeout=scaled(10)))["type"] == "time"


@pytest.mark.parametrize(
    ("uid", "secret", "status", "reason"),
    [
        ("alice", OTHER_SECRET, 401, "bad token signature"),
        ("alice", SECRET, 403, "the token is for mallory, not alice"),
    ],
    ids=["401-bad-signature", "403-another-uid"],
)
def test_a_refused_token_is_shown_with_the_servers_reason_and_not_tried_again(
    auth_server: ServerProcess, open_page: PageOpener, uid: str, secret: bytes, status: int, reason: str
) -> None:
    """A token the server refuses: `#state` says `HTTP <status>: <reason>` (data-state=refused), the
    login form is back, and the page makes no further attempt."""
    uid = unique(uid)
    handshake = {
        401: "HTTP Authentication failed; no valid credentials available",
        403: "Error during WebSocket handshake: Unexpected response code: 403",
    }[status]
    allow_failed_connections(
        open_page,
        auth_server.port,
        uid,
        re.escape(handshake),
        rf"the server responded with a status of {status} \(\w+\)",
    )
    chat = ChatPage(open_page())
    chat.open(base_url(auth_server), uid, token(uid if status == 401 else "mallory", secret))
    chat.expect_state("refused", f"the server refused: HTTP {status}: {reason.replace('alice', uid)}")
    expect(chat.page.locator("form#login")).to_be_visible()
    # The handshake, and the fetch() that learnt why it failed (the page may show the answer before
    # the test has read the server's log line about it: waited for, not read at once).
    auth_server.wait_logged("request_rejected", count=2, uid=uid, status=status)
    # A retry would come within the first backoff delay (0.5 s at most): more than two seconds go by.
    wait_ticks(auth_server, unique("watcher"), 3)
    assert len(auth_server.logged_so_far("request_rejected", uid=uid)) == 2
    assert chat.state() == "refused"
    assert len(open_page.console.entries) == 2, open_page.console.entries


def test_a_good_token_typed_into_the_login_form_connects(
    auth_server: ServerProcess, open_page: PageOpener
) -> None:
    """With auth on, the uid and a valid token typed into the login form connect, and the page chats.
    The token's field is no password field (no password manager offers to keep it) but masked, and
    it is cleared once connected."""
    uid, topic = unique("alice"), unique("room")
    chat = ChatPage(open_page())
    field = chat.page.locator("input#token")
    chat.open(base_url(auth_server), uid, token(uid))
    chat.expect_state("connected", f"as {uid}")
    expect(field).to_have_value("")
    expect(field).to_have_attribute("type", "text")
    expect(field).to_have_attribute("autocomplete", "off")
    expect(chat.page.locator("form#login")).to_have_attribute("autocomplete", "off")
    assert field.evaluate("node => getComputedStyle(node).webkitTextSecurity") == "disc"
    chat.join(topic)
    chat.send("hello with a token")
    chat.expect_messages([(uid, "hello with a token")])


def test_the_page_loads_without_console_errors_and_is_screenshot_at_phone_and_desktop_width(
    server: ServerProcess, open_page: PageOpener
) -> None:
    """The page opens with nothing on its console; a short conversation, at 390x844 and 1280x800, is
    saved to test-output/screenshots/."""
    fresh = ChatPage(open_page())
    fresh.page.goto(f"{base_url(server)}/")
    expect(fresh.page.locator("form#login")).to_be_visible()
    fresh.expect_state("idle")
    assert open_page.console.entries == []

    topic = "afrozalm:mala:zorfa"
    other = "news"
    pages = {"phone": ChatPage(open_page(*PHONE)), "desktop": ChatPage(open_page(*DESKTOP))}
    for uid, chat in zip(("alice", "bob"), pages.values(), strict=True):
        chat.open(base_url(server), uid)
        chat.expect_state("connected", f"as {uid}")
        chat.join(other)
        chat.join(topic)
    lines = [
        ("alice", "hi bob, are you around?"),
        ("bob", "yes, here on my desktop; the terminal folks are in news"),
        ("alice", "the page shows <b>this</b> as text"),
    ]
    for uid, body in lines:
        (pages["phone"] if uid == "alice" else pages["desktop"]).send(body)
        for chat in pages.values():
            chat.expect_messages(lines[: lines.index((uid, body)) + 1])
    publish_blocking(server.url(""), "carol", other, "news for later")
    for chat in pages.values():
        expect(chat.room(other).locator("span.unread")).to_have_text("1", timeout=expect_timeout(None))
        assert chat.unread(other) == 1
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, chat in pages.items():
        chat.page.screenshot(path=SCREENSHOTS / f"page-{name}.png", full_page=True)


def test_the_page_loads_and_chats_behind_a_proxy(
    server: ServerProcess, open_page: PageOpener, proxy_kind: str, tmp_path: Path
) -> None:
    """Behind HAProxy and behind nginx, the page loads from the proxy, connects through it, and chats."""
    proxy = ProxyProcess(proxy_kind, tmp_path / proxy_kind, [server.port]).start()
    try:
        topic = unique("room")
        alice = connected_page(open_page, proxy, "alice", topic)
        alice.send("through the proxy")
        # Published before bob's, so that the order is known.
        alice.expect_messages([("alice", "through the proxy")])
        alice.expect_echoed()
        publish_blocking(server.url(""), "bob", topic, "straight to the server")
        alice.expect_messages([("alice", "through the proxy"), ("bob", "straight to the server")])
    finally:
        open_page.close()
        proxy.stop()


@pytest.fixture(scope="module")
def small_server() -> Iterator[ServerProcess]:
    """A server that takes frames of MAX_MESSAGE_BYTES at most (ticks off, /stats fresh at each request)."""
    process = ServerProcess(
        "--tick", "0", "--metrics-max-age", "0", "--max-message-bytes", str(MAX_MESSAGE_BYTES)
    ).start()
    yield process
    process.stop()


def stats_of(server: ServerProcess) -> dict[str, int]:
    """The integer counters of the server's /stats."""
    with urllib.request.urlopen(server.http_url("/stats"), timeout=scaled(10)) as response:
        document = json.loads(response.read())
    return {name: int(value) for name, value in document.items() if isinstance(value, int)}


def test_a_message_over_the_servers_limit_is_refused_before_sending_with_the_reason(
    small_server: ServerProcess, open_page: PageOpener
) -> None:
    """A body whose `pub` frame is over --max-message-bytes in UTF-8 bytes (600 `é`, 1200 bytes) is
    refused on the page with the reason and kept in the line; nothing reaches the server; a body of
    900 ASCII characters goes."""
    topic = unique("room")
    alice = connected_page(open_page, small_server, "alice", topic)
    bob = connected_page(open_page, small_server, "bob", topic)
    before = stats_of(small_server)

    too_long = "é" * 600
    alice.send(too_long)
    error = alice.page.locator("#compose-error")
    expect(error).to_be_visible(timeout=expect_timeout(None))
    expect(error).to_contain_text(str(MAX_MESSAGE_BYTES))
    expect(alice.page.locator("form#compose #line")).to_have_value(too_long)

    fits = "x" * 900
    alice.send(fits)
    for chat in (alice, bob):
        chat.expect_messages([("alice", fits)])
    after = stats_of(small_server)
    assert after["messages_published"] == before["messages_published"] + 1
    assert (after["connections_opened"], after["connections_closed"]) == (
        before["connections_opened"],
        before["connections_closed"],
    )
    assert alice.state() == "connected"


def tab_to(page: Page, selector: str, presses: int = 30) -> None:
    """Press Tab until the element `selector` has the focus; fail after `presses` presses."""
    target = page.locator(selector)
    for _ in range(presses):
        if target.evaluate("element => element === document.activeElement"):
            return
        page.keyboard.press("Tab")
    pytest.fail(f"{selector} never had the focus in {presses} presses of Tab")


def test_keyboard_only_logs_in_joins_and_sends(server: ServerProcess, open_page: PageOpener) -> None:
    """With the keyboard only: Tab to the uid, type, Enter; Tab to the room, type, Enter; type, Enter."""
    uid, topic = unique("keys"), unique("room")
    chat = ChatPage(open_page())
    chat.page.goto(f"{base_url(server)}/")
    keyboard = chat.page.keyboard
    tab_to(chat.page, "input#uid")
    keyboard.type(uid)
    keyboard.press("Enter")
    chat.expect_state("connected", f"as {uid}")
    tab_to(chat.page, "form#join input#room")
    keyboard.type(topic)
    keyboard.press("Enter")
    expect(chat.room(topic)).to_have_attribute("aria-current", "true", timeout=expect_timeout(None))
    tab_to(chat.page, "form#compose #line")
    keyboard.type("typed, not clicked")
    keyboard.press("Enter")
    chat.expect_messages([(uid, "typed, not clicked")])


# Messages in the burst of the rendering test: twice what a room keeps, so that the oldest go too.
BURST = 2000


def publish_burst(url: str, uid: str, topic: str, bodies: list[str], window: int = 50) -> None:
    """Publish `bodies` on `topic` as `uid` as fast as the server acks them: `window` at a time, each
    sent before any of their acks (all at once, the acks would outgrow the server's queue for the
    connection: a slow consumer)."""
    with connect_blocking(url + subscribe_path(uid), open_timeout=scaled(10)) as connection:
        assert json.loads(connection.recv(timeout=scaled(10)))["type"] == "success"
        for start in range(0, len(bodies), window):
            chunk = bodies[start : start + window]
            for number, body in enumerate(chunk, start):
                frame = {"type": "pub", "topic": topic, "body": body, "ref": str(number)}
                connection.send(json.dumps(frame))
            acked = 0
            while acked < len(chunk):
                answer = json.loads(connection.recv(timeout=scaled(30)))
                assert answer["type"] in ("ack", "time"), answer
                acked += answer["type"] == "ack"


def test_a_burst_of_messages_is_shown_to_the_last_and_the_page_answers_all_along(
    start_server: StartServer, open_page: PageOpener
) -> None:
    """2000 messages at once into the attached room: the page shows the last within a generous time,
    keeps the room's last 1000 in order, and answers a script round trip within 5 s (scaled) all
    along: it draws once a frame, not once a message."""
    server = start_server("--tick", "0", "--rate-limit", "0")
    topic = unique("room")
    alice = connected_page(open_page, server, "alice", topic)
    bodies = [f"burst {number}" for number in range(BURST)]
    burst = threading.Thread(target=publish_burst, args=(server.url(""), "bob", topic, bodies))
    burst.start()
    # The body of the newest line shown, read by a script on the page: a round trip it answers only
    # between two of its tasks.
    newest = "document.querySelector('ol#messages > li.message:last-child .body')?.textContent"
    deadline = time.monotonic() + scaled(60)
    longest = 0.0
    try:
        while True:
            started = time.monotonic()
            shown = alice.page.evaluate(newest)
            longest = max(longest, time.monotonic() - started)
            if shown == bodies[-1]:
                break
            assert started < deadline, (
                f"the page shows {shown!r} after 60 s (scaled), not the last of the burst"
            )
    finally:
        burst.join(scaled(60))
    assert longest < scaled(5), f"a round trip to the page took {longest:.1f} s"
    shown = alice.page.locator("ol#messages > li.message span.body").all_text_contents()
    assert shown == bodies[-len(shown) :]
    assert len(shown) == 1000
    # The newest stays in view: the person was at the bottom.
    below = "list => list.scrollHeight - list.scrollTop - list.clientHeight"
    assert alice.page.locator("#messages").evaluate(below) < 48


# Records each text `#state` takes and each the countdown shows (a script run in the page).
WATCH_STATE = """() => {
  window.stateTexts = [];
  window.countdowns = new Set();
  const state = document.querySelector("#state");
  const countdown = document.querySelector("#countdown");
  const options = { childList: true, characterData: true, subtree: true };
  new MutationObserver(() => window.stateTexts.push(state.textContent)).observe(state, options);
  new MutationObserver(() => window.countdowns.add(countdown.textContent)).observe(countdown, options);
}"""


def header_lines(page: Page) -> float:
    """How many rows the header takes: its content's height over that of its tallest item."""
    return float(
        page.locator("header.bar").evaluate(
            """header => {
              const style = getComputedStyle(header);
              const padding = parseFloat(style.paddingTop) + parseFloat(style.paddingBottom);
              const content = header.clientHeight - padding;
              const visible = [...header.children].filter((child) => child.offsetParent !== null);
              return content / Math.max(...visible.map((child) => child.offsetHeight));
            }"""
        )
    )


def test_while_waiting_the_countdown_ticks_apart_from_the_state_and_the_phone_header_keeps_to_two_lines(
    start_server: StartServer, open_page: PageOpener
) -> None:
    """Server gone, at 390 px with a 64-character uid: `#state` (the live region) changes only with the
    state or its reason while `#countdown` counts down; the header, cut short with an ellipsis (the
    whole in `title`), takes two lines at most; "Reconnect now" gives the focus back to the line."""
    server = start_server("--tick", "0")
    uid = ("a" * 56 + unique("u"))[-64:]
    refused = "net::ERR_CONNECTION_REFUSED"
    allow_failed_connections(
        open_page, server.port, uid, f"Error in connection establishment: {refused}", refused
    )
    chat = ChatPage(open_page(*PHONE)).open(base_url(server), uid)
    chat.expect_state("connected", f"as {uid}")
    chat.join(unique("room"))
    assert header_lines(chat.page) < 2.5
    assert uid in (chat.state_line.get_attribute("title") or "")

    chat.page.evaluate(WATCH_STATE)
    server.signal(signal.SIGKILL)
    server.wait(scaled(10))
    # The delay grows to 5 s at most: the countdown shows many values in a wait or two.
    chat.page.wait_for_function("() => window.countdowns.size >= 20", timeout=expect_timeout(30))
    chat.expect_state("waiting", re.compile(r"^reconnecting \(attempt \d+: .+\)$"))
    texts = chat.page.evaluate("() => window.stateTexts")
    assert not [text for text in texts if re.search(r"\d+\.\d s", text)], texts
    assert all(before != after for before, after in itertools.pairwise(texts)), texts
    assert len(texts) < 20, texts
    expect(chat.countdown).to_have_text(re.compile(r"^retry in \d+\.\d s$"))
    assert chat.page.locator("#countdown").evaluate("node => node.closest('[aria-live]')") is None
    expect(chat.page.locator("button#reconnect-now")).to_be_visible()
    assert header_lines(chat.page) < 2.5
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    chat.page.screenshot(path=SCREENSHOTS / "page-phone-waiting.png")

    chat.page.locator("button#reconnect-now").click()
    expect(chat.page.locator("form#compose #line")).to_be_focused()


def one_line(page: Page, selector: str) -> bool:
    """Whether the element `selector` is one line high, its text cut short (wider than the element)."""
    return bool(
        page.locator(selector).evaluate(
            """node => {
              const lineHeight = parseFloat(getComputedStyle(node).lineHeight);
              return node.clientHeight < 2 * lineHeight && node.scrollWidth > node.clientWidth;
            }"""
        )
    )


def test_long_names_are_cut_short_with_the_whole_in_their_title_and_leave_is_beside_the_rooms_name(
    server: ServerProcess, open_page: PageOpener
) -> None:
    """At 390 px a 128-character room is one line in the room list and in the conversation's title,
    each with the whole name in `title`; the list has no leave button: "Leave" beside the title
    leaves the attached room (the next one is attached) and the focus goes to the room to join."""
    long_topic = ("r" * 120 + unique("t"))[-128:]
    other = unique("room")
    chat = connected_page(open_page, server, "alice", other)
    chat.page.set_viewport_size({"width": PHONE[0], "height": PHONE[1]})
    chat.join(long_topic)
    name = f'#rooms li[data-topic="{long_topic}"] button.room'
    assert one_line(chat.page, name)
    expect(chat.page.locator(name)).to_have_attribute("title", long_topic)
    assert one_line(chat.page, "#room-title")
    expect(chat.page.locator("#room-title")).to_have_attribute("title", long_topic)
    expect(chat.page.locator("#rooms button")).to_have_count(2)
    expect(chat.page.locator("button#leave")).to_have_accessible_name(f"leave {long_topic}")

    chat.leave(long_topic)
    expect(chat.room(other)).to_have_attribute("aria-current", "true")
    expect(chat.page.locator("form#join input#room")).to_be_focused()
    chat.leave(other)
    expect(chat.page.locator("#room-title")).to_have_text("no room: join one")
    expect(chat.page.locator("button#leave")).to_be_hidden()


def test_bodies_show_backslashes_as_typed_escapes_set_apart_emoji_whole_and_right_to_left_isolated(
    server: ServerProcess, open_page: PageOpener
) -> None:
    """A typed `\\u202e` shows as typed and plain; a real U+202E as `\\u202e` in a span.escape; a family
    emoji (pictographs joined by U+200D) whole; names and bodies are `dir="auto"`, isolated."""
    topic = unique("room")
    alice = connected_page(open_page, server, "alice", topic)
    typed = "a backslash \\ and a typed \\u202e"
    family = "family: 👨\u200d👩\u200d👧"
    hebrew = "שלום, עולם!"
    publish_blocking(server.url(""), "bob", topic, typed, "real\u202eone", family, hebrew)
    alice.expect_messages([("bob", typed), ("bob", "real\\u202eone"), ("bob", family), ("bob", hebrew)])
    escapes = [line.locator("span.escape").all_text_contents() for line in alice.message_lines.all()]
    assert escapes == [[], ["\\u202e"], [], []]
    for part in ("span.from", "span.body"):
        spans = alice.message_lines.locator(part)
        assert spans.evaluate_all("spans => spans.map((span) => span.dir)") == ["auto"] * 4
        isolation = spans.evaluate_all("spans => spans.map((span) => getComputedStyle(span).unicodeBidi)")
        assert isolation == ["isolate"] * 4


class FrameInjector:
    """Stands between a page and the server (Playwright's WebSocket routing): passes every frame on,
    but refuses the first `pub` of `refused_body` with `forbidden`, and after `success` adds an
    `error` that answers nothing the page asked (a note about no room)."""

    def __init__(self, refused_body: str, note: str) -> None:
        self.refused_body = refused_body
        self.note = note
        self.refused = 0

    def route(self, page: WebSocketRoute) -> None:
        server = page.connect_to_server()

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "pub" and frame.get("body") == self.refused_body and not self.refused:
                self.refused += 1
                answer = {"type": "error", "code": "forbidden", "reason": "not here", "ref": frame["ref"]}
                page.send(json.dumps(answer))
            else:
                server.send(message)

        def from_server(message: str | bytes) -> None:
            page.send(message)
            if json.loads(message).get("type") == "success":
                page.send(json.dumps({"type": "error", "code": "bad_request", "reason": self.note}))

        page.on_message(from_page)
        server.on_message(from_server)


def test_a_note_about_no_room_goes_to_the_notice_list_and_retry_gives_the_focus_back_to_the_line(
    server: ServerProcess, open_page: PageOpener
) -> None:
    """An `error` frame that answers no request shows in `#notices`, not in a room or under the join
    form; a refused publish shows failed with Retry, whose press sends it again (it is published)
    and gives the focus back to the line."""
    topic = unique("room")
    note = "a note about no room in particular"
    injector = FrameInjector("refuse me once", note)
    chat = ChatPage(open_page())
    chat.page.route_web_socket(re.compile(r"/subscribe/"), injector.route)
    chat.open(base_url(server), "alice")
    chat.expect_state("connected", "as alice")
    chat.join(topic)
    expect(chat.page.locator("#notices li")).to_have_text(
        [re.compile(rf"^\d\d:\d\d:\d\d the server says: bad_request: {note}$")]
    )
    expect(chat.page.locator("#join-error")).to_be_empty()
    assert chat.notices() == []

    chat.send("refuse me once")
    failed = chat.page.locator("ol#messages > li.message.failed")
    expect(failed).to_contain_text("not sent: forbidden: not here", timeout=expect_timeout(None))
    failed.locator("button.retry").click()
    expect(chat.page.locator("form#compose #line")).to_be_focused()
    chat.expect_messages([("alice", "refuse me once")])
    chat.expect_echoed()
    assert injector.refused == 1
