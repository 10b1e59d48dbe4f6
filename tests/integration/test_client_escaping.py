"""The terminal client cannot be made to deceive its reader: hidden and reordering characters are escaped."""

from __future__ import annotations

import re
from pathlib import Path

from tests.integration.client_process import TerminalClient, read_lines, wait_for_lines
from tests.integration.server_process import ServerProcess
from tests.integration.wire import open_client, publish, unique

# A right-to-left override that shows "exe.txt" as "txt.exe", a zero-width space inside a word,
# a backslash, and an escape sequence that would clear the screen.
BODY = "invoice \u202etxt.exe pay\u200bpal C:\\temp \x1b[2J"
SHOWN = "invoice \\u202etxt.exe pay\\u200bpal C:\\\\temp \\x1b[2J"
HIDDEN = ("\u202e", "\u200b", "\x1b")


async def test_bidi_zero_width_and_control_characters_are_escaped_on_screen_and_in_the_transcript(
    server: ServerProcess, tmp_path: Path
) -> None:
    topic = unique("escaped")
    client = TerminalClient(tmp_path / "reader", "reader", server.url(""), "--topic", topic).start()
    try:
        client.expect(r"^\* connected to [^\n]* as reader\b")
        async with await open_client(server, "mallory") as publisher:
            await publish(publisher, topic, BODY, "p-1")
            await publish(publisher, topic, "after", "p-2")
        line = f"[r/{topic}]> (@mallory): {SHOWN}"
        client.expect(rf"^\d{{4}}/\d\d/\d\d \d\d:\d\d:\d\d {re.escape(line)}$")
        client.expect(r"^[^\n]*\(@mallory\): after$")
        assert not any(char in client.screen for char in HIDDEN), client.screen

        written = wait_for_lines(client.transcript, lambda _: True, count=2)
        assert written[0].endswith(line), written
        assert written[1].endswith("(@mallory): after"), written
        assert len(read_lines(client.transcript)) == 2
        assert not any(char in "".join(written) for char in HIDDEN)
    finally:
        client.stop()
