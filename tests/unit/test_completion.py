"""complete: what Tab offers for the text before the cursor, attached or detached."""

from __future__ import annotations

import pytest

from minimess.app.completion import Completions, complete
from minimess.domain.model import Topic

TOPICS = (Topic("news"), Topic("afrozalm:mala:zorfa"), Topic("nature"))


@pytest.mark.parametrize(
    ("before", "attached", "expected"),
    [
        ("su", False, Completions("su", ("sub",))),
        ("/su", False, Completions("/su", ("/sub",))),
        ("  at", False, Completions("at", ("attach",))),
        ("e", False, Completions("e", ("exit",))),
        ("/u", True, Completions("/u", ("/unsub",))),
        ("su", True, Completions("su", ())),
        ("", True, Completions("", ())),
        ("sub n", False, Completions("n", ("news", "nature"))),
        ("/attach afr", True, Completions("afr", ("afrozalm:mala:zorfa",))),
        ("pub ", False, Completions("", ("news", "afrozalm:mala:zorfa", "nature"))),
        ("sub n", True, Completions("n", ())),
        ("pub news he", False, Completions("he", ())),
        ("help n", False, Completions("n", ())),
        ("// n", True, Completions("n", ())),
    ],
)
def test_tab_completes_a_command_word_where_a_command_starts_and_a_topic_after_one_that_takes_it(
    before: str, attached: bool, expected: Completions
) -> None:
    """Attached, only `/` commands: a line without `/` is a message, left as typed."""
    assert complete(before, attached, TOPICS) == expected


def test_detached_an_empty_line_offers_every_command() -> None:
    words = complete("", False, ()).words
    assert {"sub", "unsub", "attach", "pub", "topics", "help", "quit"} <= set(words)
    assert list(words) == sorted(words)
