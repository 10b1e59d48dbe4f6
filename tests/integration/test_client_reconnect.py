"""The terminal client through an outage: one notice, a status line counting down, and Enter to retry now."""

from __future__ import annotations

import functools
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.client_process import PrintClient, TerminalClient
from tests.integration.server_process import ServerProcess
from tests.timeouts import scaled

SERVE_ARGS = ("--tick", "0")
# Slack on top of a reconnect delay: a connection attempt, the handshake and resubscribing.
RECONNECT_SLACK = 4.0
# Notices of an outage in the conversation (docs/client.md).
OUTAGE_NOTICE = re.compile(r"^\* (disconnected|not connected) \(", re.MULTILINE)
STATUS = r"reconnecting in (?P<delay>\d+\.\d) s \(attempt (?P<attempt>\d+), [^)]*\); Enter retries now"


@pytest.fixture
def start_client(
    start_client: Callable[..., TerminalClient], tmp_path: Path
) -> Callable[..., TerminalClient]:
    """Start a client as `uid` on a server in its own directory; all are killed after the test."""
    return functools.partial(start_client, cpr=True)


def is_later_attempt(attempt: int, status: re.Match[str]) -> bool:
    return int(status["attempt"]) > attempt


def kill(server: ServerProcess) -> None:
    server.signal(signal.SIGKILL)
    server.wait(scaled(15))


def test_an_outage_is_one_notice_then_a_status_line_that_counts_the_attempts(
    start_server: Callable[..., ServerProcess], start_client: Callable[..., TerminalClient]
) -> None:
    """Failed attempts print no line each: the bottom row says which attempt is next; connected, it goes."""
    server = start_server(*SERVE_ARGS)
    a = start_client("a", server, "--retry-first", "0.1", "--retry-cap", "0.3")
    kill(server)
    a.expect_status("disconnected (")
    # Waiting, with what Enter does; or, the wait over, the attempt under way (Enter would do nothing).
    failure = r"\(attempt ([5-9]|\d\d+), cannot reach ws://127\.0\.0\.1:\d+: connection refused\)"
    a.expect_drawn(rf"(reconnecting in \d+\.\d s {failure}; Enter retries now|connecting now {failure})$")
    server.start(port=server.port)
    a.expect(r"^\* connected to [^\n]* as a$", 0.3 + RECONNECT_SLACK)
    a.expect_not_drawn(r"connecting (in \d+\.\d s|now) \(attempt")
    assert len(OUTAGE_NOTICE.findall(a.screen)) == 1, a.screen


@pytest.mark.parametrize("typed", ["", "reconnect"], ids=["enter", "reconnect"])
def test_enter_or_reconnect_connects_at_once_rather_than_after_the_delay(
    start_server: Callable[..., ServerProcess], start_client: Callable[..., TerminalClient], typed: str
) -> None:
    """With delays of up to 60 s, the client is back within seconds of Enter once its server is."""
    server = start_server(*SERVE_ARGS)
    a = start_client("a", server, "--retry-first", "60", "--retry-cap", "60")
    kill(server)
    a.expect_status("disconnected (")
    # A long delay to cut short: while the server is down, each Enter is an attempt that fails at
    # once and draws another delay, uniformly up to 60 s.
    status = a.expect_drawn(STATUS)
    while float(status["delay"]) < 40:
        attempt = int(status["attempt"])
        a.line("")
        # A later attempt, not exactly the next: a drawn delay of a fraction of a second (or under
        # 0.05 s, said as "connecting now") may end and fail before the screen is looked at again.
        status = a.expect_drawn(STATUS, where=functools.partial(is_later_attempt, attempt))
    # The wait ends no earlier than this (the drawn delay may be a redraw late).
    waited_until = time.monotonic() + float(status["delay"]) - 1

    server.start(port=server.port)
    assert time.monotonic() + scaled(RECONNECT_SLACK) < waited_until, "the server took too long to start"
    a.line(typed)
    if typed:
        a.expect_status("reconnecting now")
    a.expect(r"^\* connected to [^\n]* as a$", RECONNECT_SLACK)
    assert time.monotonic() < waited_until
    a.expect_not_drawn(r"connecting (in \d+\.\d s|now) \(attempt")
    a.line("reconnect")
    a.expect_status("already connected")
    assert len(OUTAGE_NOTICE.findall(a.screen)) == 1, a.screen


def test_print_mode_writes_each_change_of_the_status_not_each_tick_of_its_countdown(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """stderr: one notice of the outage, then a status line per failed attempt, each with its delay once."""
    server = start_server(*SERVE_ARGS)
    client = PrintClient(tmp_path, "p", server.url(""), "--retry-first", "1", "--retry-cap", "1").start()
    try:
        client.stderr.wait_for(lambda line: line.startswith("* connected to"))
        kill(server)
        # Full jitter may draw a wait under 0.05 s, which the line says as "connecting now (attempt …)".
        statuses = client.stderr.wait_for(
            lambda line: line.startswith(("* reconnecting in", "* connecting now")), count=3
        )
        attempts = [re.search(r"\(attempt (\d+),", line) for line in statuses]
        # The drop is the notice's alone; attempt 1 to reconnect failing is the first status line.
        assert [match[1] if match else line for match, line in zip(attempts, statuses, strict=True)] == [
            "2",
            "3",
            "4",
        ]
        outage = [line for line in client.stderr.items if OUTAGE_NOTICE.match(line)]
        assert len(outage) == 1, client.stderr.items
    finally:
        client.stop()
