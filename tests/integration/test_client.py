"""The terminal client as a user sees it, driven in a pseudo-terminal against real servers."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.integration.client_process import (
    DOWN,
    UP,
    PrintClient,
    TerminalClient,
    read_lines,
    run_client,
    wait_for_lines,
)
from tests.integration.server_process import ServerProcess
from tests.integration.wire import open_client, publish, unique
from tests.timeouts import scaled

SERVE_ARGS = ("--tick", "0")
RETRY_CAP = 1.0
RETRY = ("--retry-first", "0.2", "--retry-cap", str(RETRY_CAP))
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


async def publish_as_w(server: ServerProcess, topic: str, *bodies: str) -> None:
    """Publish `bodies` on `topic` as "w" from a plain WebSocket client, each acked before the next."""
    async with await open_client(server, "w") as publisher:
        for number, body in enumerate(bodies):
            await publish(publisher, topic, body, f"r-{number}")


@pytest.fixture
def start_client(tmp_path: Path) -> Iterator[Callable[..., TerminalClient]]:
    """Start a client as `uid` on a server in its own directory; all are killed after the test."""
    started: list[TerminalClient] = []

    def start(uid: str, server: ServerProcess, *args: str) -> TerminalClient:
        client = TerminalClient(tmp_path / uid, uid, server.url(""), *args)
        started.append(client)
        client.start()
        client.expect(rf"^\* connected to [^\n]* as {uid}\b")
        return client

    yield start
    for client in started:
        client.stop()


def test_attached_lines_reach_subscribers_in_transcript_format_until_detached(
    server: ServerProcess, start_client: Callable[..., TerminalClient]
) -> None:
    """Attached, a line reaches every subscriber's transcript; after `//` it is refused; `quit` exits 0."""
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
    a.line("quit")
    assert a.wait_exit() == 0


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM-1001"])
def test_clients_reconnect_resubscribe_and_send_queued_lines_after_the_server_comes_back(
    start_server: Callable[..., ServerProcess], start_client: Callable[..., TerminalClient], signum: int
) -> None:
    """After a crash or a 1001 shutdown and a restart, clients reconnect in time and send what was typed."""
    server = start_server(*SERVE_ARGS)
    a = start_client("a", server, *RETRY)
    b = start_client("b", server, *RETRY, "--topic", "room")
    a.line("attach room")
    a.expect_status("attached to room")
    a.line("before the outage")
    b.wait_for_line(from_("a", "before the outage"))

    server.signal(signum)
    server.wait(scaled(15))
    a.expect_status("disconnected")
    b.expect_status("disconnected")
    a.line("typed during the outage")

    server.start(port=server.port)
    reconnected = [
        client.expect(
            rf"^\* connected to [^\n]* as {client.uid}\b[^\n]*", RETRY_CAP + RECONNECT_SLACK
        ).group()
        for client in (a, b)
    ]
    # Only a resubscribed client receives its own queued line: it resubscribes before sending it.
    a.wait_for_line(from_("a", "typed during the outage"))
    # Still attached: a plain line is a message, and B's resubscription brings it to B.
    a.line("after the restart")
    for client in (a, b):
        client.wait_for_line(from_("a", "after the restart"))
    # docs/client.md; checked last, so that a wording slip does not hide whether reconnecting works.
    for status in reconnected:
        assert status.endswith("; resubscribed to room"), status


async def test_print_mode_prints_messages_to_stdout_and_status_to_stderr(
    server: ServerProcess, tmp_path: Path
) -> None:
    """`--print` writes messages to stdout as in the transcript, status to stderr, and stops on Ctrl-C."""
    topic = unique("print")
    client = PrintClient(tmp_path, "p", server.url(""), "--topic", topic).start()
    try:
        await asyncio.to_thread(client.stderr.wait_for, lambda line: "connected to" in line)
        await publish_as_w(server, topic, "printed 0", "printed 1")
        await asyncio.to_thread(client.stdout.wait_for, from_("w", "printed 1"))
        printed = list(client.stdout.items)
        for n, line in enumerate(printed):
            assert_transcript_line(line, topic, "w", f"printed {n}")
        assert await asyncio.to_thread(wait_for_lines, client.transcript, lambda _: True, 2) == printed

        await asyncio.to_thread(client.interrupt)
        assert not any("Traceback" in line for line in client.stderr.items), client.stderr.items
    finally:
        client.stop()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--uid", "a", "--server", "http://x"), "server"),
        (("--uid", "b@d", "--server", "ws://127.0.0.1:9"), "uid"),
    ],
    ids=["http-server", "bad-uid"],
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


def test_up_arrow_recalls_the_previous_line(
    server: ServerProcess, start_client: Callable[..., TerminalClient]
) -> None:
    """Up and Enter re-sends the previous line; Up, Up, Down walks back to the later one."""
    topic = unique("history")
    a = start_client("a", server)
    a.line(f"sub {topic}")
    a.expect_status(f"subscribed to {topic}")
    a.type(UP + "\r")
    a.expect_status(f"subscribed to {topic}")

    a.line(f"pub {topic} again")
    a.wait_for_line(from_("a", "again"))
    a.type(UP + UP + DOWN + "\r")
    wait_for_lines(a.transcript, from_("a", "again"), count=2)


async def test_a_message_arriving_while_typing_does_not_break_the_line(
    server: ServerProcess, start_client: Callable[..., TerminalClient]
) -> None:
    """A message printed while a line is half typed goes above the prompt, and the line is sent whole."""
    topic = unique("typing")
    a = await asyncio.to_thread(start_client, "a", server, "--topic", topic)
    a.type(f"pub {topic} hel")
    await publish_as_w(server, topic, "interrupting")
    await asyncio.to_thread(a.expect, r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d [^\n]*\(@w\): interrupting$")

    a.line("lo")
    await asyncio.to_thread(a.wait_for_line, from_("a", "hello"))
    await asyncio.to_thread(a.expect, rf"^> pub {re.escape(topic)} hello$")
