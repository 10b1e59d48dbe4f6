"""Console log lines: what a client sent is escaped, so it can neither drive the terminal nor forge a line."""

from __future__ import annotations

import sys

import pytest

from minimess.entrypoints.console_log import console_renderer, escape_values

ESC = "\x1b"
# Everything a client can put in a request path, a close reason or a frame that the log repeats.
HOSTILE = "/\x1b[2J\x1b]0;owned\x07\r\nfake_event level=error\u202etxt.exe\u200b\x85"


def render(colors: bool, **values: object) -> str:
    event_dict = {"timestamp": "2026-01-01T00:00:00Z", "level": "info", **values}
    line = console_renderer(colors)(None, "info", escape_values(None, "info", event_dict))
    assert isinstance(line, str)
    return line


@pytest.mark.parametrize("colors", [False, True], ids=["plain", "colours"])
def test_text_values_and_the_event_are_escaped_into_one_line(colors: bool) -> None:
    line = render(colors, event=f"request_rejected{HOSTILE}", path=HOSTILE, reason=f"x{ESC}[31m")
    assert len(line.splitlines()) == 1
    for raw in ("\x1b[2J", "\x1b]0;", "\x07", "\r", "\u202e", "\u200b", "\x85", "\x1b[31m"):
        assert raw not in line
    assert "\\x1b[2J" in line
    assert "\\u202etxt.exe" in line
    if not colors:
        assert ESC not in line


def test_plain_lines_keep_the_fields_order_and_other_values_keep_their_repr() -> None:
    """In the order logged, not the alphabet's: the start line's url comes first."""
    line = render(False, event="client_connected", uid="alice", code=1000, topics=("a\x1b", "b"))
    assert line == (
        "2026-01-01T00:00:00Z [info     ] client_connected               "
        "uid=alice code=1000 topics=('a\\x1b', 'b')"
    )


def test_a_traceback_keeps_its_lines_and_writes_what_an_exception_says_on_one_escaped_line() -> None:
    """Chained exceptions too; the message cannot add a line of its own."""
    try:
        try:
            raise KeyError(f"inner{ESC}[2J")
        except KeyError as cause:
            raise ValueError(f"invalid HTTP request line: GET {HOSTILE}") from cause
    except ValueError:
        lines = render(False, event="connection_failed", exc_info=sys.exc_info()).splitlines()
    assert lines[0].endswith("connection_failed")
    assert lines.count("Traceback (most recent call last):") == 2
    assert "KeyError: 'inner\\x1b[2J'" in lines
    assert lines[-1] == (
        "ValueError: invalid HTTP request line: GET /\\x1b[2J\\x1b]0;owned\\x07\\r\\n"
        "fake_event level=error\\u202etxt.exe\\u200b\\x85"
    )
    assert not [line for line in lines if line.startswith("fake_event")]
    assert ESC not in "".join(lines)
