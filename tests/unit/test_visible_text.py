"""Escaping for the terminal: one line, nothing hidden or reordered, and reversible."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from minimess.app.visible_text import escape_invisible, escape_text, unescape_text

INVISIBLE = [
    *map(chr, range(0x20)),
    *map(chr, range(0x7F, 0xA0)),
    "\u061c",
    *map(chr, range(0x200B, 0x2010)),
    *map(chr, range(0x202A, 0x202F)),
    "\u2060",
    *map(chr, range(0x2066, 0x206A)),
    "\ufeff",
    "\u2028",
    "\u2029",
    *"\xad\u034f\u115f\u1160\u17b4\u17b5\u180e\u2061\u2062\u2063\u2064\u3164\uffa0",
    *map(chr, range(0xE0000, 0xE0080)),
]


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("two\nlines", "two\\nlines"),
        ("crlf\r\n", "crlf\\r\\n"),
        ("tab\there", "tab\\there"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("nul\x00bell\x07", "nul\\x00bell\\x07"),
        ("del\x7f", "del\\x7f"),
        ("c1\x85next\x9b", "c1\\x85next\\x9b"),
        ("line\u2028paragraph\u2029", "line\\u2028paragraph\\u2029"),
        ("\u202egnp.exe", "\\u202egnp.exe"),
        ("iso\u2066late\u2069 mark\u200e\u200f\u061c", "iso\\u2066late\\u2069 mark\\u200e\\u200f\\u061c"),
        ("zero\u200bwidth\u200c\u200d\u2060\ufeff", "zero\\u200bwidth\\u200c\\u200d\\u2060\\ufeff"),
        (
            "soft\xadhyphen, filler\u3164\uffa0\u115f, mongolian\u180e",
            "soft\\xadhyphen, filler\\u3164\\uffa0\\u115f, mongolian\\u180e",
        ),
        ("tags\U000e0001\U000e0041\U000e007f", "tags\\U000e0001\\U000e0041\\U000e007f"),
        ("back\\slash", "back\\\\slash"),
        ("not an escape: \\n", "not an escape: \\\\n"),
        *[(text, text) for text in ["What's up all", "héllo wörld", "emoji 🙂", "\u00a0nbsp", "עברית", ""]],
    ],
)
def test_invisible_characters_and_backslashes_become_escapes_and_the_rest_stays(
    text: str, written: str
) -> None:
    """Accents, emoji, right-to-left letters and non-breaking spaces are shown as they are."""
    assert escape_text(text) == written
    assert unescape_text(written) == text


@given(st.text())
@example("\\x1b")
@example("\\\\u202e\u202e")
@example("\ud800")
def test_any_text_becomes_one_line_of_visible_characters_that_gives_it_back(text: str) -> None:
    written = escape_text(text)
    assert unescape_text(written) == text
    assert len(written.splitlines()) <= 1
    assert not set(written) & set(INVISIBLE)


@given(st.text(st.characters(exclude_characters=[*INVISIBLE, "\\"], exclude_categories=["Cs"])))
def test_text_without_invisible_characters_or_backslashes_is_written_as_it_is(text: str) -> None:
    assert escape_text(text) == text


def test_escape_invisible_leaves_backslashes_for_text_that_already_holds_escapes() -> None:
    """A repr, for one: its escapes stay as they are, and what it let through is escaped."""
    assert escape_invisible("'a\\nb' \x1b[2J\u202e") == "'a\\nb' \\x1b[2J\\u202e"
