"""The client's transcript: one line per message received, appended to `<uid>.mess`, and a line
where messages may be missing."""

from __future__ import annotations

from datetime import datetime, tzinfo
from pathlib import Path
from typing import TextIO

from minimess.app.visible_text import escape_text
from minimess.domain.model import Message, Topic

GAP_TEXT = "* may have missed messages"


def transcript_line(message: Message, zone: tzinfo | None = None) -> str:
    """`YYYY/MM/DD HH:MM:SS [r/<topic>]> (@<from>): <body>`, in `zone` (default local), no newline.

    The body is escaped (`escape_text`): one message is one line, shown as it was sent, and
    `unescape_text` of what follows `): ` gives the body back.
    """
    when = message.timestamp.astimezone(zone).strftime("%Y/%m/%d %H:%M:%S")
    return f"{when} [r/{message.topic}]> (@{message.sender}): {escape_text(message.body)}"


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
