"""What the terminal client does with input it cannot send: bytes that are not UTF-8."""

from __future__ import annotations

import os
from collections.abc import Callable

from tests.integration.client_process import TerminalClient
from tests.integration.server_process import ServerProcess
from tests.integration.wire import unique


def test_a_pasted_latin1_line_is_refused_and_the_client_goes_on(
    server: ServerProcess, start_client: Callable[..., TerminalClient]
) -> None:
    """A terminal in Latin-1 sends `é` as the byte 0xE9: refused with a `!` line, never a traceback."""
    topic = unique("latin1")
    a = start_client(unique("a"), server)
    a.line(f"attach {topic}")
    a.expect_status(f"attached to {topic}")
    assert a.child is not None
    os.write(a.child.child_fd, b"caf\xe9 latin1\r")
    a.expect(
        r"^! the line is not valid UTF-8 \(is the terminal set to another encoding\?\); nothing was sent$"
    )
    a.line("café in UTF-8")
    a.wait_for_line(lambda line: line.endswith("): café in UTF-8"))
    a.line("/quit")
    assert a.wait_exit() == 0
    assert "Traceback" not in a.screen
