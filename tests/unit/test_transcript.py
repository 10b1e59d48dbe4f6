"""The transcript: one line per message in local time, bodies escaped reversibly, flushed for `tail -f`;
one client per file."""

from __future__ import annotations

import errno
import fcntl
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minimess.app.transcript import Transcript, TranscriptInUse, gap_line, transcript_line
from minimess.app.transcript_files import open_transcript
from minimess.app.visible_text import unescape_text
from minimess.domain.model import Message, Topic, Uid

KOLKATA = timezone(timedelta(hours=5, minutes=30))
SAO_PAULO = timezone(timedelta(hours=-3))


def _message(body: str = "What's up all", at: datetime | None = None) -> Message:
    return Message(
        id="m-1",
        topic=Topic("afrozalm:mala:zorfa"),
        sender=Uid("afrozalm"),
        body=body,
        timestamp=at or datetime(2026, 11, 28, 10, 30, 14, 987000, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("message", "zone", "line"),
    [
        (_message(), KOLKATA, "2026/11/28 16:00:14 [r/afrozalm:mala:zorfa]> (@afrozalm): What's up all"),
        (_message(), SAO_PAULO, "2026/11/28 07:30:14 [r/afrozalm:mala:zorfa]> (@afrozalm): What's up all"),
        (
            _message("late", datetime(2026, 12, 31, 22, 30, 0, tzinfo=UTC)),
            KOLKATA,
            "2027/01/01 04:00:00 [r/afrozalm:mala:zorfa]> (@afrozalm): late",
        ),
    ],
    ids=["ahead-of-utc", "behind-utc", "next-day"],
)
def test_a_line_is_the_documented_format_with_the_time_in_the_zone_seconds_truncated(
    message: Message, zone: timezone, line: str
) -> None:
    assert transcript_line(message, zone) == line


def test_a_gap_line_reads_like_a_message_line_of_its_topic_without_a_sender() -> None:
    """At the time it is written, in the zone; `*` where a message has `(@<from>):`."""
    moment = datetime(2026, 11, 29, 0, 30, 0, 456000, tzinfo=UTC)
    line = gap_line(Topic("afrozalm:mala:zorfa"), moment, KOLKATA)
    assert line == "2026/11/29 06:00:00 [r/afrozalm:mala:zorfa]> * may have missed messages"
    assert transcript_line(_message(), KOLKATA).startswith("2026/11/28 16:00:14 [r/afrozalm:mala:zorfa]> (@")


@pytest.mark.parametrize(
    ("body", "written"),
    [
        ("two\nlines", "two\\nlines"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("line\u2028paragraph", "line\\u2028paragraph"),
        ("\u202egnp.exe", "\\u202egnp.exe"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("back\\slash", "back\\\\slash"),
        *[(text, text) for text in ["héllo wörld", "emoji 🙂", "\u00a0nbsp"]],
    ],
)
def test_a_body_is_written_escaped_so_one_message_is_one_line_shown_as_sent(body: str, written: str) -> None:
    """Printable text, accents, emoji and non-breaking spaces included, stays byte for byte as it is."""
    line = transcript_line(_message(body), KOLKATA)
    assert line == f"2026/11/28 16:00:14 [r/afrozalm:mala:zorfa]> (@afrozalm): {written}"
    assert len(line.splitlines()) == 1


@given(st.text())
def test_unescaping_what_follows_the_sender_gives_the_body_back(body: str) -> None:
    """For any body: a transcript line can be read back unambiguously."""
    line = transcript_line(_message(body), KOLKATA)
    prefix = "2026/11/28 16:00:14 [r/afrozalm:mala:zorfa]> (@afrozalm): "
    assert line.startswith(prefix)
    assert len(line.splitlines()) == 1
    assert unescape_text(line.removeprefix(prefix)) == body


def test_open_creates_the_file_so_an_unwritable_path_is_found_before_any_message(tmp_path: Path) -> None:
    path = tmp_path / "afrozalm.mess"
    transcript = Transcript(path)
    transcript.open()
    transcript.close()
    assert path.read_text() == ""
    with pytest.raises(OSError):  # noqa: PT011 - which OSError depends on the platform
        Transcript(tmp_path).open()


def test_each_line_is_flushed_so_another_reader_sees_it_at_once(tmp_path: Path) -> None:
    """Like `tail -f`, before the transcript is closed."""
    path = tmp_path / "afrozalm.mess"
    transcript = Transcript(path)
    try:
        transcript.append("first")
        with path.open(encoding="utf-8") as reader:
            assert reader.read() == "first\n"
            transcript.append("second ünïcode")
            assert reader.read() == "second ünïcode\n"
    finally:
        transcript.close()


def test_append_opens_the_file_itself_and_adds_to_what_earlier_sessions_wrote(tmp_path: Path) -> None:
    """Also after close, which may be called twice."""
    path = tmp_path / "afrozalm.mess"
    path.write_text("yesterday\n", encoding="utf-8")
    transcript = Transcript(path)
    transcript.append("one")
    transcript.close()
    transcript.close()
    transcript.append("two")
    transcript.close()
    assert path.read_text(encoding="utf-8") == "yesterday\none\ntwo\n"


def test_a_transcript_open_in_one_client_is_locked_against_another_until_closed(tmp_path: Path) -> None:
    """Each message would be in the file twice otherwise; closing releases the lock."""
    path = tmp_path / "afrozalm.mess"
    first, second = Transcript(path), Transcript(path)
    first.open()
    with pytest.raises(TranscriptInUse, match=r"afrozalm\.mess is in use by another client"):
        second.open()
    first.close()
    second.open()
    second.close()


def test_the_default_transcript_of_a_second_client_of_a_uid_is_the_next_free_numbered_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two terminals of one user both work; a name with `+`, which no uid has, is no one else's file."""
    monkeypatch.chdir(tmp_path)
    opened = [open_transcript(Uid("afrozalm"), None) for _ in range(3)]
    try:
        assert [(str(t.path), t.instead_of) for t in opened] == [
            ("afrozalm.mess", None),
            ("afrozalm+2.mess", Path("afrozalm.mess")),
            ("afrozalm+3.mess", Path("afrozalm.mess")),
        ]
        opened[0].close()
        again = open_transcript(Uid("afrozalm"), None)
        assert (again.path, again.instead_of) == (Path("afrozalm.mess"), None)
        again.close()
    finally:
        for transcript in opened:
            transcript.close()


def test_an_explicit_log_file_in_use_is_refused_rather_than_replaced(tmp_path: Path) -> None:
    path = str(tmp_path / "chat.log")
    first = open_transcript(Uid("afrozalm"), path)
    try:
        with pytest.raises(TranscriptInUse):
            open_transcript(Uid("afrozalm"), path)
    finally:
        first.close()


def test_a_file_that_is_not_a_regular_file_is_shared_not_locked() -> None:
    """Two clients with `--log-file /dev/null` both run: nothing is written anywhere to interleave."""
    first = open_transcript(Uid("afrozalm"), "/dev/null")
    try:
        second = open_transcript(Uid("afrozalm"), "/dev/null")
        second.append("a line to nowhere")
        second.close()
    finally:
        first.close()


def test_a_lock_that_fails_names_the_file_and_leaves_it_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """flock's ENOLCK (a file system without locks) names no file: open says which, and keeps none open."""
    locked: list[int] = []

    def no_locks(fd: int, _operation: int) -> None:
        locked.append(fd)
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    path = tmp_path / "afrozalm.mess"
    with pytest.raises(OSError, match="No locks available") as raised:
        Transcript(path).open()
    assert raised.value.filename == str(path)
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(locked[0])
