"""The transcript: one line per message in local time, controls escaped, flushed for `tail -f`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from minimess.app.transcript import Transcript, escape_controls, transcript_line
from minimess.domain.model import Message, Topic, Uid

# POSIX TZ strings, so that no tz database is needed: the sign is west-positive.
KOLKATA = "IST-5:30"
SAO_PAULO = "BRT+3"


@pytest.fixture
def local_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the process's local time zone UTC+05:30 for the test, and restore it afterwards."""
    with monkeypatch.context() as patch:
        patch.setenv("TZ", KOLKATA)
        time.tzset()
        yield
    time.tzset()


def _message(body: str = "What's up all", at: datetime | None = None) -> Message:
    return Message(
        id="m-1",
        topic=Topic("afrozalm:mala:zorfa"),
        sender=Uid("afrozalm"),
        body=body,
        timestamp=at or datetime(2026, 11, 28, 10, 30, 14, 987000, tzinfo=UTC),
    )


@pytest.mark.usefixtures("local_time")
def test_a_line_is_the_documented_format_in_local_time() -> None:
    """`YYYY/MM/DD HH:MM:SS [r/<topic>]> (@<from>): <body>`, the time shifted to local, seconds truncated."""
    assert (
        transcript_line(_message())
        == "2026/11/28 16:00:14 [r/afrozalm:mala:zorfa]> (@afrozalm): What's up all"
    )


@pytest.mark.usefixtures("local_time")
def test_local_time_can_be_on_the_next_day() -> None:
    """A message sent late in the UTC evening is dated the next morning in UTC+05:30."""
    line = transcript_line(_message("late", datetime(2026, 12, 31, 22, 30, 0, tzinfo=UTC)))
    assert line.startswith("2027/01/01 04:00:00 ")


def test_local_time_follows_the_tz_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same message is written with the time of whichever zone the process is in."""
    with monkeypatch.context() as patch:
        patch.setenv("TZ", SAO_PAULO)
        time.tzset()
        try:
            line = transcript_line(_message())
        finally:
            patch.undo()
            time.tzset()
    assert line.startswith("2026/11/28 07:30:14 ")


@pytest.mark.parametrize(
    ("body", "written"),
    [
        ("two\nlines", "two\\nlines"),
        ("carriage\rreturn", "carriage\\rreturn"),
        ("tab\there", "tab\\there"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("nul\x00bell\x07", "nul\\x00bell\\x07"),
        ("del\x7f", "del\\x7f"),
        ("c1\x85next\x9b", "c1\\x85next\\x9b"),
        ("line\u2028separator", "line\\u2028separator"),
        ("paragraph\u2029separator", "paragraph\\u2029separator"),
        ("crlf\r\n", "crlf\\r\\n"),
    ],
)
def test_control_characters_in_a_body_are_escaped(body: str, written: str) -> None:
    """Newlines, tabs, ESC, DEL, C1 controls and U+2028/9 become visible escapes: one message, one line."""
    assert escape_controls(body) == written
    line = transcript_line(_message(body))
    assert line.endswith(f"(@afrozalm): {written}")
    assert len(line.splitlines()) == 1


@pytest.mark.parametrize("body", ["plain text", "héllo wörld", "emoji 🙂", "\u00a0nbsp", "back\\slash"])
def test_printable_text_is_written_as_it_is(body: str) -> None:
    """Letters, accents, emoji and non-breaking spaces are not escaped."""
    assert escape_controls(body) == body


def test_the_transcript_creates_its_file_on_open(tmp_path: Path) -> None:
    """open() creates an empty file, so an unwritable path is found before any message arrives."""
    path = tmp_path / "afrozalm.mess"
    transcript = Transcript(path)
    transcript.open()
    try:
        assert path.read_text() == ""
    finally:
        transcript.close()


def test_an_unwritable_path_fails_on_open(tmp_path: Path) -> None:
    """open() raises OSError when the path cannot be written (here: it is a directory)."""
    with pytest.raises(OSError):  # noqa: PT011 - which OSError depends on the platform
        Transcript(tmp_path).open()


def test_each_line_is_flushed_so_another_reader_sees_it_at_once(tmp_path: Path) -> None:
    """A second reader (like `tail -f`) reads every appended line before the transcript is closed."""
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


def test_append_creates_the_file_when_it_was_not_opened(tmp_path: Path) -> None:
    """The first append opens the file itself."""
    path = tmp_path / "bob.mess"
    transcript = Transcript(path)
    try:
        transcript.append("hello")
    finally:
        transcript.close()
    assert path.read_text(encoding="utf-8") == "hello\n"


def test_an_existing_transcript_is_appended_to(tmp_path: Path) -> None:
    """Earlier sessions' lines stay; new lines go after them."""
    path = tmp_path / "afrozalm.mess"
    path.write_text("yesterday\n", encoding="utf-8")
    transcript = Transcript(path)
    transcript.open()
    try:
        transcript.append("today")
    finally:
        transcript.close()
    assert path.read_text(encoding="utf-8") == "yesterday\ntoday\n"


def test_close_is_idempotent_and_append_after_close_reopens(tmp_path: Path) -> None:
    """close() twice is harmless, and a later append opens the file again."""
    path = tmp_path / "afrozalm.mess"
    transcript = Transcript(path)
    transcript.append("one")
    transcript.close()
    transcript.close()
    transcript.append("two")
    transcript.close()
    assert path.read_text(encoding="utf-8") == "one\ntwo\n"
