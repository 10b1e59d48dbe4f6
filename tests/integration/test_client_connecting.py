"""The terminal client while a connection attempt hangs: what `reconnect` says, and quitting at once."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.client_process import TerminalClient


@pytest.fixture
def silent_server() -> Iterator[str]:
    """The ws:// URL of a listener whose connections the kernel accepts and nobody ever answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"ws://127.0.0.1:{listener.getsockname()[1]}"


def test_during_a_hanging_attempt_reconnect_says_so_and_quit_leaves_at_once(
    tmp_path: Path, silent_server: str
) -> None:
    """The handshake would wait 10 s for an answer: `reconnect` does not pretend to restart it, and
    `quit` ends it rather than waiting for it."""
    client = TerminalClient(tmp_path, "a", silent_server).start()
    try:
        client.expect(r"^\* transcript: ")
        client.line("reconnect")
        client.expect(r"^\* already connecting \(attempt 1\)$")
        client.line("quit")
        # Within the 3 s the client used to wait for the attempt, and well within its 10 s.
        assert client.wait_exit(within=2) == 0
        assert "Traceback" not in client.screen
    finally:
        client.stop()
