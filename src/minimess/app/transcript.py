"""The client's transcript: one line per message received, appended to `<uid>.mess`, and a line
where messages may be missing."""

from __future__ import annotations

import fcntl
import os
import stat
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


class TranscriptInUse(Exception):
    """Another process holds the transcript file's lock: another client is writing it."""


class Transcript:
    """Appends transcript lines to a file and flushes each one, so `tail -f` shows it at once.

    While open it holds an exclusive lock on the file (flock), so that two clients never write
    one file: each message would be in it twice, interleaved. Only a regular file: `/dev/null`, a
    terminal or a pipe may be shared, and is not locked.
    """

    def __init__(self, path: Path, instead_of: Path | None = None) -> None:
        self.path = path
        # The file this one stands in for, held by another client (`<uid>.mess`); None if none.
        self.instead_of = instead_of
        self._file: TextIO | None = None

    def open(self) -> None:
        """Open (creating if needed) for appending, and lock it.

        Raises TranscriptInUse when another process holds the lock, OSError (its filename the
        path) when the file cannot be written or locked.
        """
        file = self.path.open("a", encoding="utf-8")
        try:
            if stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                # Not blocking: the other client may run for days; the caller decides what to do.
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            raise TranscriptInUse(f"{self.path} is in use by another client") from None
        except OSError as error:
            # flock's own error names no file (ENOLCK, on a file system without locks).
            file.close()
            raise OSError(error.errno, error.strerror, str(self.path)) from None
        self._file = file

    def append(self, line: str) -> None:
        if self._file is None:
            self.open()
        assert self._file is not None
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file, which releases its lock."""
        if self._file is not None:
            self._file.close()
            self._file = None
