"""Console logs escape what clients send: no escape sequence reaches the terminal, nor forges a line."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect

from devtools import processes
from tests.integration.server_process import PROCESS_START, FollowedStream
from tests.timeouts import scaled

CONSOLE_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z \[")
# Request paths as a raw socket can send them: ASCII without spaces; a lone CR stays in the path
# (the request line ends at LF), and would send the cursor back to overwrite the line.
PATHS = ["/\x1b[31mred\x1b[0m", "/a\rfake_event\x1b[2K"]
# Close reasons are any UTF-8 text the client likes.
REASONS = ["bye\x1b]0;owned\x07\u202etxt.exe", "two\nfake_event\x1b[2J"]


@pytest.fixture
def console_server() -> Iterator[tuple[subprocess.Popen[str], FollowedStream[str]]]:
    """`minimess serve --log-format console` with its stderr on a pipe, as a service manager runs it."""
    # At debug: the close line, which repeats the client's close reason, is logged there.
    command = [sys.executable, "-m", "minimess", "serve", "-v", "--port", "0", "--tick", "0"]
    process = subprocess.Popen(
        [*command, "--log-format", "console"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="surrogateescape",
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log = FollowedStream(process.stderr, str, threading.Condition())
    try:
        yield process, log
    finally:
        if process.poll() is None:
            processes.terminate([process.pid], scaled(15))
        process.wait()


def every_line(log: FollowedStream[str]) -> list[str]:
    """All the lines, once the stream has ended (the process has exited)."""
    with log.changed:
        assert log.changed.wait_for(lambda: not log.running, scaled(10)), "stderr still open"
        return list(log.items)


def request(port: int, path: str) -> bytes:
    """Send a GET for `path` byte for byte and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(10)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


async def test_request_paths_and_close_reasons_are_logged_escaped_each_on_its_one_line(
    console_server: tuple[subprocess.Popen[str], FollowedStream[str]],
) -> None:
    process, log = console_server
    (listening,) = await asyncio.to_thread(
        log.wait_for, lambda line: "server_listening" in line, within=scaled(PROCESS_START)
    )
    # Without colour styles, were there any: a failure then shows the lines, not a missing port.
    port = int(re.findall(r"\bport=(\d+)", re.sub(r"\x1b\[[0-9;]*m", "", listening))[0])
    # The start line, readable: where to connect.
    assert f"url=ws://127.0.0.1:{port}/subscribe/id:<uid>/topic:<topic>" in listening
    for path in PATHS:
        assert (await asyncio.to_thread(request, port, path)).startswith(b"HTTP/1.1 404")
    for reason in REASONS:
        async with connect(f"ws://127.0.0.1:{port}/subscribe/id:mallory", open_timeout=scaled(10)) as client:
            await client.recv()
            await client.close(1000, reason)
    rejected = await asyncio.to_thread(log.wait_for, lambda line: "request_rejected" in line, len(PATHS))
    closed = await asyncio.to_thread(log.wait_for, lambda line: "client_disconnected" in line, len(REASONS))
    assert "/\\x1b[31mred\\x1b[0m" in rejected[0]
    assert "/a\\rfake_event\\x1b[2K" in rejected[1]
    assert "bye\\x1b]0;owned\\x07\\u202etxt.exe" in closed[0]
    assert "two\\nfake_event\\x1b[2J" in closed[1]

    process.terminate()
    assert await asyncio.to_thread(process.wait, scaled(15)) == 0
    lines = await asyncio.to_thread(every_line, log)
    assert any("server_stopped" in line for line in lines), lines
    assert not [line for line in lines if CONSOLE_LINE.match(line) is None], lines
    assert not [line for line in lines if set(line) & {"\x1b", "\x07", "\r", "\u202e"}], lines
