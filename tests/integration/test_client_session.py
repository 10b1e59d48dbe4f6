"""The terminal client's session as a user meets it in a pseudo-terminal: slash lines, Tab, Ctrl-C and
Ctrl-D, quitting with unsent lines, and one transcript file per client."""

from __future__ import annotations

import asyncio
import functools
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.client_process import (
    PrintClient,
    TerminalClient,
    read_lines,
    run_client,
    wait_for_lines,
)
from tests.integration.server_process import ServerProcess
from tests.integration.wire import unique
from tests.timeouts import scaled

CTRL_C = "\x03"
CTRL_D = "\x04"
TAB = "\t"


@pytest.fixture
def start_client(
    start_client: Callable[..., TerminalClient], tmp_path: Path
) -> Callable[..., TerminalClient]:
    """Start a client as `uid` in `tmp_path` (clients of one uid share it), once it is connected."""
    return functools.partial(start_client, directory=tmp_path)


def test_attached_a_slash_line_that_is_no_command_is_refused_and_double_slash_space_sends_one(
    server: ServerProcess, start_client: Callable[..., TerminalClient]
) -> None:
    """`/who` would tell the room about a typo: it is an error; `// /etc/hosts …` sends `/etc/hosts …`."""
    topic = unique("slash")
    a = start_client(unique("a"), server)
    a.line(f"attach {topic}")
    a.expect_status(f"subscribed to {topic}")
    a.expect_status(f"attached to {topic}")
    a.line("/who")
    a.expect(r"^! unknown command /who; nothing was sent \(type help; to send a line starting with /, ")
    a.line("// /etc/hosts is readable")
    a.wait_for_line(lambda line: line.endswith("): /etc/hosts is readable"))
    a.line("//")
    a.expect_status(f"detached from {topic}")
    a.line("/tpoics")
    a.expect(r"^! unknown command /tpoics; nothing was sent")
    assert [line.rsplit("): ", 1)[1] for line in read_lines(a.transcript)] == ["/etc/hosts is readable"]


def test_the_small_answers_unsub_pub_and_a_topic_with_spaces(
    server: ServerProcess, start_client: Callable[..., TerminalClient]
) -> None:
    """unsub of a topic not subscribed, a pub's ack, several words for a topic."""
    topic = unique("small")
    a = start_client(unique("a"), server)
    a.line(f"unsub {topic}")
    a.expect_status(f"not subscribed to {topic}")
    a.line(f"pub {topic} hello")
    a.expect_status(f"published to {topic}")
    a.line("sub bad topic!")
    a.expect(r"^! usage: sub <topic>, one topic: a topic name has no spaces \(it must match ")
    assert "unsubscribed" not in a.screen


def test_tab_completes_a_command_word_and_a_known_topic(
    server: ServerProcess, start_client: Callable[..., TerminalClient]
) -> None:
    topic = unique("tabbed")
    a = start_client(unique("a"), server)
    a.type("atta" + TAB)
    a.line(f" {topic}")
    a.expect_status(f"subscribed to {topic}")
    a.expect_status(f"attached to {topic}")
    a.line("//")
    a.expect_status(f"detached from {topic}")
    a.type(f"unsub {topic[:7]}" + TAB)
    a.line("")
    a.expect_status(f"unsubscribed from {topic}")


def test_ctrl_c_clears_the_line_being_typed_and_ctrl_d_on_an_empty_line_quits(
    server: ServerProcess, start_client: Callable[..., TerminalClient]
) -> None:
    """As a shell does: the half-typed line is not run, and the client stays."""
    a = start_client(unique("a"), server)
    a.type("half typed" + CTRL_C)
    a.line("topics")
    a.expect_status("topics: none")
    assert "half" not in "".join(line for line in a.screen.splitlines() if line.startswith("!"))
    assert "Ctrl-C clears the line" not in a.screen
    # On an empty line, where a shell user may have meant to leave, it says how.
    a.type(CTRL_C)
    a.expect_status("Ctrl-C clears the line; Ctrl-D on an empty line, or quit, leaves")
    a.type(CTRL_D)
    assert a.wait_exit() == 0


def test_quit_with_lines_queued_in_an_outage_warns_and_the_second_quit_says_what_was_dropped(
    start_server: Callable[..., ServerProcess], start_client: Callable[..., TerminalClient]
) -> None:
    """docs/client.md: nothing is lost silently."""
    server = start_server("--tick", "0")
    a = start_client(unique("a"), server, "--retry-first", "30", "--retry-cap", "30")
    a.line("attach room")
    a.expect_status("attached to room")
    server.signal(signal.SIGKILL)
    server.wait(scaled(15))
    a.expect_status("disconnected")
    a.line("one")
    a.line("two")
    a.expect_status("queued")
    a.expect_status("queued")
    a.line("/quit")
    a.expect(r"^! 2 messages not sent yet \(not connected\); quit again to drop them, or wait$")
    a.type(CTRL_D)
    a.expect(r"^minimess client: 2 messages not sent, dropped on quitting$")
    assert a.wait_exit() == 0


def test_a_second_client_of_a_uid_writes_a_transcript_of_its_own_and_says_which(
    server: ServerProcess, start_client: Callable[..., TerminalClient], tmp_path: Path
) -> None:
    """Each message once in each file, not twice in one."""
    uid, topic = unique("twin"), unique("twins")
    # Said before connecting, so on screen by the time the fixture has seen "connected".
    first = start_client(uid, server, "--topic", topic)
    assert re.search(rf"^\* transcript: {uid}\.mess \(tail -f {uid}\.mess\)$", first.screen, re.MULTILINE)
    second = start_client(uid, server, "--topic", topic)
    assert re.search(
        rf"^\* {uid}\.mess is in use by another client of {uid}; transcript: {uid}\+2\.mess"
        rf" \(tail -f {uid}\+2\.mess\)$",
        second.screen,
        re.MULTILINE,
    ), second.screen
    first.line(f"pub {topic} hello twins")
    first.expect_status(f"published to {topic}")
    for path in (tmp_path / f"{uid}.mess", tmp_path / f"{uid}+2.mess"):
        assert len(wait_for_lines(path, lambda line: line.endswith("): hello twins"))) == 1
    # Had both clients written one file, it would hold the message twice: a late copy shows too.
    first.line(f"pub {topic} marker")
    second.wait_for_line(lambda line: line.endswith("): marker"))
    for path in (tmp_path / f"{uid}.mess", tmp_path / f"{uid}+2.mess"):
        assert sum(line.endswith("): hello twins") for line in read_lines(path)) == 1


def test_an_explicit_log_file_in_use_is_refused_with_exit_2(
    server: ServerProcess, start_client: Callable[..., TerminalClient], tmp_path: Path
) -> None:
    start_client(unique("a"), server, "--log-file", "chat.log")
    refused = run_client(tmp_path, ["--uid", "b", "--server", server.url(""), "--log-file", "chat.log"])
    assert refused.returncode == 2
    assert refused.stderr == (
        "minimess client: chat.log is in use by another client; give another --log-file\n"
    )


async def test_print_mode_says_where_the_transcript_is_on_stderr(
    server: ServerProcess, tmp_path: Path
) -> None:
    client = PrintClient(tmp_path, "p", server.url("")).start()
    try:
        await asyncio.to_thread(client.stderr.wait_for, lambda line: "connected to" in line)
        assert "* transcript: p.mess (tail -f p.mess)" in client.stderr.items
        assert client.stdout.items == []
        await asyncio.to_thread(client.interrupt)
    finally:
        client.stop()
