"""The terminal client as a user sees it, driven in a pseudo-terminal against real servers."""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection

from tests.integration.client_process import (
    DOWN,
    UP,
    PrintClient,
    TerminalClient,
    read_lines,
    run_client,
    wait_for_lines,
)
from tests.integration.kafka_process import KafkaProcess, fresh_kafka_topic, kafka_serve_args
from tests.integration.proxy_process import ProxyProcess, ProxyUnavailable, find_executable, proxy_unavailable
from tests.integration.server_process import ServerProcess, wait_status
from tests.integration.wire import logged, open_client, publish, unique
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
# Where the client cannot know whether it missed messages of a topic (docs/client.md).
GAP_LINE = re.compile(
    r"(?P<time>\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) \[r/(?P<topic>[^\]]+)\]> \* may have missed messages"
)
# The failover test's reconnect delays: the first up to 1 s, so that messages published at once
# after the server's death most likely reach the client by recovery rather than live.
FAILOVER_RETRY_CAP = 1.0
FAILOVER_RETRY = ("--retry-first", "1", "--retry-cap", str(FAILOVER_RETRY_CAP))
# Until a Kafka server answers /readyz 200: it creates the Kafka topic and connects its clients first.
READY_WITHIN = 20.0


def from_(sender: str, body: str) -> Callable[[str], bool]:
    """Whether a transcript line is the message `body` from `sender`."""
    return lambda line: line.endswith(f"(@{sender}): {body}")


def bodies(transcript: Path) -> list[str]:
    """The message bodies in a transcript file; fail on a line not in the transcript format."""
    matches = [(line, TRANSCRIPT_LINE.fullmatch(line)) for line in read_lines(transcript)]
    return [
        match["body"] if match else pytest.fail(f"not a transcript line: {line!r}") for line, match in matches
    ]


def gap(topic: str) -> str:
    """How `entries` shows a gap line of `topic`."""
    return f"<may have missed messages on {topic}>"


def is_gap(line: str) -> bool:
    return GAP_LINE.fullmatch(line) is not None


def entries(transcript: Path) -> list[str]:
    """The transcript as `<sender>: <body>` per message and gap(topic) per gap line; fail on other lines."""

    def entry(line: str) -> str:
        if (message := TRANSCRIPT_LINE.fullmatch(line)) is not None:
            return f"{message['sender']}: {message['body']}"
        if (missed := GAP_LINE.fullmatch(line)) is not None:
            return gap(missed["topic"])
        pytest.fail(f"neither a message nor a gap line: {line!r}")

    return [entry(line) for line in read_lines(transcript)]


def assert_transcript_line(line: str, topic: str, sender: str, body: str) -> None:
    """`line` is exactly `YYYY/MM/DD HH:MM:SS [r/<topic>]> (@<sender>): <body>`, in local time, about now."""
    match = TRANSCRIPT_LINE.fullmatch(line)
    assert match is not None, line
    assert (match["topic"], match["sender"], match["body"]) == (topic, sender, body), line
    stamp = datetime.strptime(match["time"], "%Y/%m/%d %H:%M:%S")
    now = datetime.now(CLIENT_ZONE).replace(tzinfo=None)
    assert abs(stamp - now) < CLOCK_SLACK, f"{line!r} is not local time near {now}"


def assert_gap_line(line: str, topic: str) -> None:
    """`line` is exactly `YYYY/MM/DD HH:MM:SS [r/<topic>]> * may have missed messages`, local time, now."""
    match = GAP_LINE.fullmatch(line)
    assert match is not None, line
    assert match["topic"] == topic, line
    stamp = datetime.strptime(match["time"], "%Y/%m/%d %H:%M:%S")
    now = datetime.now(CLIENT_ZONE).replace(tzinfo=None)
    assert abs(stamp - now) < CLOCK_SLACK, f"{line!r} is not local time near {now}"


async def publish_as_w(server: ServerProcess, topic: str, *bodies: str) -> None:
    """Publish `bodies` on `topic` as "w" from a plain WebSocket client, each acked before the next."""
    async with await open_client(server, "w") as publisher:
        for number, body in enumerate(bodies):
            await publish(publisher, topic, body, f"r-{number}")


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
    # The restarted server (memory broker) has new logs: neither client can know what it missed,
    # and both say so, on screen and in the transcript, before anything received after it.
    for client in (a, b):
        client.expect_status("may have missed messages on room")
        assert_gap_line(client.wait_for_line(is_gap), "room")
    assert entries(a.transcript) == [
        "a: before the outage",
        gap("room"),
        "a: typed during the outage",
        "a: after the restart",
    ]
    # B may have come back after A's queued line was published: then it missed it, as it says.
    assert entries(b.transcript)[:2] == ["a: before the outage", gap("room")]
    assert entries(b.transcript)[-1] == "a: after the restart"
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


@pytest.fixture
def haproxy() -> str:
    """HAProxy's program; the test is skipped (or failed, MINIMESS_REQUIRE_PROXIES=1) without it."""
    try:
        return find_executable("haproxy")
    except ProxyUnavailable as error:
        proxy_unavailable(str(error))


async def publish_numbered(connection: ClientConnection, numbers: Iterator[int], count: int) -> list[str]:
    """Publish `w <n>` on room for the next `count` numbers, each acked before the next; the bodies."""
    bodies = [f"w {next(numbers)}" for _ in range(count)]
    for body in bodies:
        await publish(connection, "room", body, f"r-{body}")
    return bodies


async def test_a_client_moved_to_the_other_kafka_server_behind_haproxy_has_every_message_once(
    kafka: KafkaProcess,
    haproxy: str,
    start_server: Callable[..., ServerProcess],
    start_client: Callable[..., TerminalClient],
    tmp_path: Path,
) -> None:
    """SIGKILL the server a client is on while messages flow: it resumes on the other one from its last
    message, and its transcript has each message, its own included, exactly once, with no gap line."""
    topic = fresh_kafka_topic()
    servers = {node: start_server(*kafka_serve_args(kafka, topic, node), "-v") for node in ("s1", "s2")}
    for server in servers.values():
        await asyncio.to_thread(wait_status, server, "/readyz", 200, READY_WITHIN)
    proxy = ProxyProcess("haproxy", tmp_path / "haproxy", [s.port for s in servers.values()]).start()
    try:
        # start_client takes anything with a server's url(); the proxy is one.
        c = await asyncio.to_thread(start_client, "c", proxy, *FAILOVER_RETRY, "--topic", "room")
        await logged(list(servers.values()), "client_connected", uid="c")
        (node,) = [
            name for name, server in servers.items() if server.logged_so_far("client_connected", uid="c")
        ]
        moved_to = "s2" if node == "s1" else "s1"
        doomed, survivor = servers[node], servers[moved_to]
        numbers = itertools.count()
        async with await open_client(survivor, "w") as w:
            before = await publish_numbered(w, numbers, 5)
            await asyncio.to_thread(c.wait_for_line, from_("w", before[-1]), 15)
            c.line("pub room c before")
            await asyncio.to_thread(c.wait_for_line, from_("c", "c before"), 15)

            # Typed as the server dies: published or not, its ack may be lost; then it goes again.
            c.line("pub room c racing")
            doomed.signal(signal.SIGKILL)
            await asyncio.to_thread(c.expect_status, "disconnected")
            c.line("pub room c during")
            # Published while the client is away (most likely: its retry waits up to 1 s), so they
            # reach it by recovery from the survivor's history.
            during = await publish_numbered(w, numbers, 5)
            await asyncio.to_thread(
                c.expect, rf"^\* connected to {moved_to} as c\b", FAILOVER_RETRY_CAP + RECONNECT_SLACK
            )
            after = await publish_numbered(w, numbers, 5)
            c.line("pub room c after")
            await asyncio.to_thread(c.wait_for_line, from_("w", after[-1]), 15)
            await asyncio.to_thread(c.wait_for_line, from_("c", "c after"), 15)
        assert await asyncio.to_thread(doomed.wait, scaled(5)) == -signal.SIGKILL

        received = entries(c.transcript)
        repeated = [entry for entry, count in Counter(received).items() if count > 1]
        assert repeated == [], received
        assert gap("room") not in received, received
        expected = [f"w: {body}" for body in [*before, *during, *after]]
        assert [entry for entry in received if entry.startswith("w: ")] == expected, received
        own = ["c: c before", "c: c racing", "c: c during", "c: c after"]
        assert [entry for entry in received if entry.startswith("c: ")] == own, received
        # Nothing was reported failed: every line was published, once.
        assert not re.search(r"^! ", c.screen, re.MULTILINE), c.screen
    finally:
        proxy.stop()
