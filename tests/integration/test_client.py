"""The terminal client as a user sees it, driven in a pseudo-terminal against real servers."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.integration.client_process import (
    DOWN,
    UP,
    PrintClient,
    TerminalClient,
    read_lines,
    run_client,
    wait_for_line,
    wait_for_lines,
)
from tests.integration.server_process import ServerProcess
from tests.integration.wire import frame_of_type, open_client, send_frame, stats
from tests.timeouts import scaled

SERVE_ARGS = ("--tick", "0")
RETRY_FIRST = 0.2
RETRY_CAP = 1.0
RETRY = ("--retry-first", str(RETRY_FIRST), "--retry-cap", str(RETRY_CAP))
# Slack on top of the longest reconnect delay: a connection attempt, the handshake and resubscribing.
RECONNECT_SLACK = 4.0
# The zone the clients run in (client_process.CLIENT_TZ), as an offset.
CLIENT_ZONE = timezone(timedelta(hours=5, minutes=30))
# How far a transcript time may be from now (same machine: scheduling, and whole seconds).
CLOCK_SLACK = timedelta(seconds=10)
TRANSCRIPT_LINE = re.compile(
    r"(?P<time>\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) "
    r"\[r/(?P<topic>[^\]]+)\]> \(@(?P<sender>[^)]+)\): (?P<body>.*)"
)


def unique(prefix: str) -> str:
    """A topic no other test uses, so that tests sharing a server cannot see each other."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def from_(sender: str, body: str) -> Callable[[str], bool]:
    """Whether a transcript line is the message `body` from `sender`."""
    return lambda line: line.endswith(f"(@{sender}): {body}")


def bodies(transcript: Path) -> list[str]:
    """The message bodies in a transcript file; fail on a line not in the transcript format."""
    matches = [(line, TRANSCRIPT_LINE.fullmatch(line)) for line in read_lines(transcript)]
    return [
        match["body"] if match else pytest.fail(f"not a transcript line: {line!r}") for line, match in matches
    ]


def assert_transcript_line(line: str, topic: str, sender: str, body: str) -> None:
    """`line` is exactly `YYYY/MM/DD HH:MM:SS [r/<topic>]> (@<sender>): <body>`, in local time, about now."""
    match = TRANSCRIPT_LINE.fullmatch(line)
    assert match is not None, line
    assert (match["topic"], match["sender"], match["body"]) == (topic, sender, body), line
    stamp = datetime.strptime(match["time"], "%Y/%m/%d %H:%M:%S")
    now = datetime.now(CLIENT_ZONE).replace(tzinfo=None)
    assert abs(stamp - now) < CLOCK_SLACK, f"{line!r} is not local time near {now}"


def expect_reconnected(client: TerminalClient) -> str:
    """The status line of the client's next connect, which must come within the backoff bound."""
    return client.expect(
        rf"^\* connected to [^\n]* as {re.escape(client.uid)}\b[^\n]*", within=RETRY_CAP + RECONNECT_SLACK
    ).group()


def assert_resubscribed_wording(statuses: list[str], topics: str) -> None:
    """Reconnect status lines read `* connected to … as …; resubscribed to <topics>` (docs/client.md).

    Checked last in a test, so that a wording slip does not hide whether reconnecting works.
    """
    for status in statuses:
        assert status.endswith(f"; resubscribed to {topics}"), status


@pytest.fixture
def start_client(tmp_path: Path) -> Iterator[Callable[..., TerminalClient]]:
    """Start a client as `uid` on a server (or URL) in its own directory; all are killed after the test."""
    started: list[TerminalClient] = []

    def start(
        uid: str, server: ServerProcess | str, *args: str, wait_connected: bool = True
    ) -> TerminalClient:
        url = server if isinstance(server, str) else server.url("")
        client = TerminalClient(tmp_path / uid, uid, url, *args)
        started.append(client)
        client.start()
        if wait_connected:
            client.expect(rf"^\* connected to [^\n]* as {re.escape(uid)}\b")
        return client

    yield start
    for client in started:
        client.stop()


@pytest.fixture
def restart_server() -> Iterator[Callable[[ServerProcess], ServerProcess]]:
    """Start a new server on a stopped server's port; every one started is stopped after the test."""
    started: list[ServerProcess] = []

    def restart(stopped: ServerProcess) -> ServerProcess:
        # A fresh ServerProcess: the stopped one's log already holds a `server_listening` event.
        server = ServerProcess(*SERVE_ARGS)
        started.append(server)
        return server.start(port=stopped.port)

    yield restart
    for server in started:
        server.stop()


def test_attached_lines_reach_subscribers_in_transcript_format_and_detach_stops_them(
    server: ServerProcess, start_client: Callable[..., TerminalClient]
) -> None:
    """An attached line reaches every subscriber's transcript; after `//` plain lines are not sent."""
    topic = "afrozalm:mala:zorfa"
    a = start_client("a", server)
    b = start_client("b", server)
    b.line(f"sub {topic}")
    b.expect_status(f"subscribed to {topic}")
    a.line(f"attach {topic}")
    a.expect_status(f"attached to {topic}")

    a.line("What's up all")
    for client in (a, b):
        assert_transcript_line(client.wait_for_line(from_("a", "What's up all")), topic, "a", "What's up all")

    a.line("//")
    a.expect_status(f"detached from {topic}")
    a.line("not for anyone")
    a.expect_problem()
    a.line(f"pub {topic} marker after detach")
    for client in (a, b):
        assert_transcript_line(
            client.wait_for_line(from_("a", "marker after detach")), topic, "a", "marker after detach"
        )
        assert bodies(client.transcript) == ["What's up all", "marker after detach"]


def test_clients_reconnect_resubscribe_and_send_queued_lines_after_the_server_is_killed(
    start_server: Callable[..., ServerProcess],
    restart_server: Callable[[ServerProcess], ServerProcess],
    start_client: Callable[..., TerminalClient],
) -> None:
    """After SIGKILL and a restart, clients reconnect in time, resubscribe, send what was typed."""
    server = start_server(*SERVE_ARGS)
    a = start_client("a", server, *RETRY)
    b = start_client("b", server, *RETRY, "--topic", "room")
    a.line("attach room")
    a.expect_status("attached to room")
    a.line("before the outage")
    b.wait_for_line(from_("a", "before the outage"))

    server.signal(signal.SIGKILL)
    server.wait(scaled(10))
    a.expect_status("disconnected")
    b.expect_status("disconnected")
    a.line("typed during the outage")

    restart_server(server)
    reconnected = [expect_reconnected(client) for client in (a, b)]
    # Only a resubscribed client receives its own queued line: it resubscribes before sending it.
    a.wait_for_line(from_("a", "typed during the outage"))
    # Still attached: a plain line is a message, and B's resubscription brings it to B.
    a.line("after the restart")
    for client in (a, b):
        client.wait_for_line(from_("a", "after the restart"))
    assert_resubscribed_wording(reconnected, "room")


def test_clients_reconnect_after_the_server_goes_away_with_1001(
    start_server: Callable[..., ServerProcess],
    restart_server: Callable[[ServerProcess], ServerProcess],
    start_client: Callable[..., TerminalClient],
) -> None:
    """After SIGTERM (close code 1001) and a restart on the same port, clients reconnect and chat again."""
    server = start_server(*SERVE_ARGS)
    a = start_client("a", server, *RETRY, "--topic", "room")
    b = start_client("b", server, *RETRY, "--topic", "room")

    server.signal(signal.SIGTERM)
    assert server.wait(scaled(15)) == 0
    a.expect_status("disconnected")
    b.expect_status("disconnected")

    restart_server(server)
    reconnected = [expect_reconnected(client) for client in (a, b)]
    a.line("pub room back again")
    for client in (a, b):
        client.wait_for_line(from_("a", "back again"))
    assert_resubscribed_wording(reconnected, "room")


async def test_print_mode_prints_messages_to_stdout_and_status_to_stderr(
    server: ServerProcess, tmp_path: Path
) -> None:
    """`--print` writes messages to stdout as in the transcript, status to stderr, and stops on Ctrl-C."""
    topic = unique("print")
    client = PrintClient(tmp_path, "p", server.url(""), "--topic", topic).start()
    try:
        await asyncio.to_thread(client.stderr.wait_for, lambda line: "connected to" in line)
        publisher = await open_client(server, "w")
        try:
            for n in range(2):
                await send_frame(publisher, type="pub", topic=topic, body=f"printed {n}", ref=f"r-{n}")
                await frame_of_type(publisher, "ack")
        finally:
            await publisher.close()

        for n in range(2):
            line = await asyncio.to_thread(client.stdout.wait_for, from_("w", f"printed {n}"))
            assert_transcript_line(line, topic, "w", f"printed {n}")
            assert (
                await asyncio.to_thread(wait_for_line, client.transcript, from_("w", f"printed {n}")) == line
            )
        assert all(TRANSCRIPT_LINE.fullmatch(line) for line in client.stdout.lines), client.stdout.lines

        await asyncio.to_thread(client.interrupt)
        assert not any("Traceback" in line for line in client.stderr.lines), client.stderr.lines
    finally:
        client.stop()


def test_bad_commands_and_topics_get_one_line_explanations_and_send_nothing(
    start_server: Callable[..., ServerProcess], start_client: Callable[..., TerminalClient]
) -> None:
    """Bad commands, bad topics and a plain line while detached each get a `!` line and send no frame."""
    server = start_server(*SERVE_ARGS)
    a = start_client("a", server, "--topic", "room")
    b = start_client("b", server, "--topic", "room")

    for line in ("frobnicate", "sub b@d", "attach b@d", "pub b@d hi", "a plain line while detached"):
        a.line(line)
        a.expect_problem()
    a.line("pub room marker")

    # Messages from one publisher arrive in order, so nothing sent before the marker can still come.
    b.wait_for_line(from_("a", "marker"))
    assert bodies(b.transcript) == ["marker"]
    counters = stats(server)
    assert (counters["messages_published"], counters["error_frames"]) == (1, 0), counters


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--uid", "a", "--server", "http://x"), "server"),
        (("--uid", "a", "--server", "not a url"), "server"),
        (("--uid", "b@d", "--server", "ws://127.0.0.1:9"), "uid"),
    ],
    ids=["http-server", "not-a-url", "bad-uid"],
)
def test_bad_server_or_uid_exits_2_with_a_one_line_message(
    tmp_path: Path, args: tuple[str, ...], named: str
) -> None:
    """A bad `--server` URL or `--uid` exits 2 at once with one line naming the option, no traceback."""
    result = run_client(tmp_path, args)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    assert len(output.splitlines()) == 1, output
    assert named in output.lower(), output


async def test_control_characters_in_a_body_are_escaped_in_the_transcript(
    server: ServerProcess, start_client: Callable[..., TerminalClient]
) -> None:
    """A body with control characters is one transcript line, escaped (`\\n`, `\\t`, `\\x1b`, `\\u2028`)."""
    topic = unique("escapes")
    b = await asyncio.to_thread(start_client, "b", server, "--topic", topic)
    publisher = await open_client(server, "w")
    try:
        await send_frame(
            publisher, type="pub", topic=topic, body="one\ntwo\tthree\x1b[31mfour\u2028five", ref="r"
        )
        await frame_of_type(publisher, "ack")
        await send_frame(publisher, type="pub", topic=topic, body="marker", ref="m")
        await frame_of_type(publisher, "ack")
    finally:
        await publisher.close()

    await asyncio.to_thread(b.wait_for_line, from_("w", "marker"))
    lines = read_lines(b.transcript)
    assert len(lines) == 2, lines
    assert_transcript_line(lines[0], topic, "w", r"one\ntwo\tthree\x1b[31mfour\u2028five")


def test_up_arrow_recalls_the_previous_line(
    server: ServerProcess, start_client: Callable[..., TerminalClient]
) -> None:
    """Up and Enter re-sends the previous line; Up, Up, Down walks back to the later one."""
    topic = unique("history")
    a = start_client("a", server)
    a.line(f"sub {topic}")
    a.expect_status(f"subscribed to {topic}")
    a.type(UP)
    a.type("\r")
    a.expect_status(f"subscribed to {topic}")

    a.line(f"pub {topic} again")
    a.wait_for_line(from_("a", "again"))
    a.type(UP)
    a.type(UP)
    a.type(DOWN)
    a.type("\r")
    wait_for_lines(a.transcript, from_("a", "again"), count=2)


def test_while_attached_command_words_are_messages_and_a_slash_starts_a_command(
    server: ServerProcess, start_client: Callable[..., TerminalClient]
) -> None:
    """Attached, "quit" and "help" are messages, `/sub` and `/pub` are commands, and `/quit` leaves."""
    topic, other = unique("attached"), unique("other")
    a = start_client("a", server)
    a.line(f"attach {topic}")
    a.expect_status(f"attached to {topic}")
    a.line("quit")
    a.line("help")
    a.line(f"/sub {other}")
    a.expect_status(f"subscribed to {other}")
    a.line(f"/pub {other} side note")
    a.line("still here")

    a.wait_for_line(from_("a", "still here"))
    assert sorted(bodies(a.transcript)) == ["help", "quit", "side note", "still here"]
    a.line("/quit")
    assert a.wait_exit() == 0


async def test_a_message_arriving_while_typing_does_not_break_the_line(
    server: ServerProcess, start_client: Callable[..., TerminalClient]
) -> None:
    """A message printed while a line is half typed goes above the prompt, and the line is sent whole."""
    topic = unique("typing")
    a = await asyncio.to_thread(start_client, "a", server, "--topic", topic)
    a.type(f"pub {topic} hel")
    publisher = await open_client(server, "w")
    try:
        await send_frame(publisher, type="pub", topic=topic, body="interrupting", ref="r")
        await frame_of_type(publisher, "ack")
    finally:
        await publisher.close()
    await asyncio.to_thread(a.expect, r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d [^\n]*\(@w\): interrupting$")

    a.line("lo")
    await asyncio.to_thread(a.wait_for_line, from_("a", "hello"))
    await asyncio.to_thread(a.expect, rf"^> pub {re.escape(topic)} hello$")


def test_lines_typed_while_disconnected_are_queued_up_to_queue_size_and_sent_in_order(
    start_server: Callable[..., ServerProcess],
    restart_server: Callable[[ServerProcess], ServerProcess],
    start_client: Callable[..., TerminalClient],
) -> None:
    """Lines typed with no server wait (up to `--queue-size`, past it a `!` line) and go out in order."""
    server = start_server(*SERVE_ARGS)
    server.signal(signal.SIGKILL)
    server.wait(scaled(10))
    a = start_client("a", server, *RETRY, "--queue-size", "2", "--topic", "room", wait_connected=False)
    a.expect_status("not connected")
    for body in ("one", "two", "three"):
        a.line(f"pub room {body}")
    refused = a.expect(r'^! [^\n]*"three"$').group()

    restart_server(server)
    expect_reconnected(a)
    a.line("pub room marker")
    a.wait_for_line(from_("a", "marker"))
    assert bodies(a.transcript) == ["one", "two", "marker"]
    # docs/client.md: `! message to news failed: <reason>: "<text>"`; checked last, as wording.
    assert re.fullmatch(r'! message to room failed: .+: "three"', refused), refused


async def test_a_message_the_server_does_not_acknowledge_is_reported(
    start_client: Callable[..., TerminalClient],
) -> None:
    """A message a server never acks is reported with a `!` line after `--ack-timeout`."""

    async def greet_then_ignore(connection: ServerConnection) -> None:
        await connection.send(json.dumps({"type": "success", "uid": "a", "node": "silent", "topics": []}))
        async for _ in connection:
            pass

    async with serve(greet_then_ignore, "127.0.0.1", 0) as silent:
        port = silent.sockets[0].getsockname()[1]
        a = await asyncio.to_thread(start_client, "a", f"ws://127.0.0.1:{port}", "--ack-timeout", "0.5")
        a.line("pub news hello")
        refused = (await asyncio.to_thread(a.expect, r'^! [^\n]*"hello"$', 0.5 + 5)).group()
    # docs/client.md: `! message to news failed: <reason>: "<text>"`; checked last, as wording.
    assert re.fullmatch(r'! message to news failed: .+: "hello"', refused), refused
