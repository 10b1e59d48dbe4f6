"""The client's transcript: one line per message received, appended to `<uid>.mess`, and a line
where messages may be missing."""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TextIO

from minimess.domain.model import Message, Topic

GAP_TEXT = "* may have missed messages"

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: all would let one
# message spill over several lines (or move the cursor) in `tail -f`.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` with every control character written as a visible escape."""
    return _CONTROL.sub(_escape, text)


def transcript_line(message: Message, zone: tzinfo | None = None) -> str:
    """`YYYY/MM/DD HH:MM:SS [r/<topic>]> (@<from>): <body>`, in `zone` (default local), no newline."""
    when = message.timestamp.astimezone(zone).strftime("%Y/%m/%d %H:%M:%S")
    return f"{when} [r/{message.topic}]> (@{message.sender}): {escape_controls(message.body)}"


def gap_line(topic: Topic, moment: datetime, zone: tzinfo | None = None) -> str:
    """`YYYY/MM/DD HH:MM:SS [r/<topic>]> * may have missed messages`, at `moment` in `zone`, no newline.

    Written where the client cannot know whether messages of `topic` came that it never received.
    It starts like a message line, so a reader filtering by topic sees it in its place; `*` is
    no `(@<from>):`, so no message line can be taken for it, nor it for a message.
    """
    when = moment.astimezone(zone).strftime("%Y/%m/%d %H:%M:%S")
    return f"{when} [r/{topic}]> {GAP_TEXT}"


class Transcript:
    """Appends transcript lines to a file and flushes each one, so `tail -f` shows it at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = None

    def open(self) -> None:
        """Open (creating if needed) for appending; raises OSError when the file cannot be written."""
        self._file = self.path.open("a", encoding="utf-8")

    def append(self, line: str) -> None:
        if self._file is None:
            self.open()
        assert self._file is not None
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
