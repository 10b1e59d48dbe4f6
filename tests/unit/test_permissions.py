"""Topic patterns and grants: `*` is the only wildcard, and a grant allows exactly what its lists say."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from minimess.domain.errors import Forbidden, InvalidName
from minimess.domain.model import Topic, Uid
from minimess.domain.permissions import Grant, TopicPattern, patterns

NOW = datetime(2026, 11, 28, 3, 55, 13, tzinfo=UTC)
# Few letters, so that generated patterns and topics share runs and the wildcard has work to do.
LETTERS = "ab:"


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("news", "news", True),
        ("news", "news2", False),
        ("news", "new", False),
        ("afrozalm:*", "afrozalm:mala:zorfa", True),
        ("afrozalm:*", "afrozalm:", True),
        ("afrozalm:*", "afrozalm", False),
        ("afrozalm:*", "bob:afrozalm:x", False),
        ("*", "anything.at-all", True),
        ("*:help", "desk:help", True),
        ("*:help", "desk:helpless", False),
        ("a*b*c", "abc", True),
        ("a*b*c", "aXbYc", True),
        ("a*b*c", "acb", False),
        ("ab*ba", "aba", False),
        ("ab*ba", "abba", True),
        ("a**b", "ab", True),
        # Dots and dashes are literal: no regular expression or fnmatch meaning leaks in.
        ("a.b", "aXb", False),
        ("a.b", "a.b", True),
    ],
)
def test_a_pattern_matches_exactly_the_topics_its_literal_runs_and_wildcards_describe(
    pattern: str, topic: str, expected: bool
) -> None:
    assert TopicPattern(pattern).matches(Topic(topic)) is expected


@pytest.mark.parametrize("text", ["", "news?", "news[0]", "a b", "x/y", "é", "x" * 129, "news\n"])
def test_a_pattern_with_a_character_no_topic_has_is_refused(text: str) -> None:
    """`?` and `[` are refused rather than taken literally or as fnmatch's: nobody can mean them."""
    with pytest.raises(InvalidName, match="invalid topic pattern"):
        TopicPattern(text)


@given(
    pattern=st.text(alphabet=LETTERS + "*", min_size=1, max_size=12),
    topic=st.text(alphabet=LETTERS, min_size=1, max_size=16),
)
@example(pattern="*a*a*a*a*a*a*a*a*a*a*a*b", topic="a" * 16)
def test_matching_agrees_with_a_regular_expression_of_the_same_pattern(pattern: str, topic: str) -> None:
    """Greedy leftmost placement of the runs finds a match whenever there is one."""
    reference = ".*".join(re.escape(part) for part in pattern.split("*"))
    expected = re.fullmatch(reference, topic, re.DOTALL) is not None
    assert TopicPattern(pattern).matches(Topic(topic)) is expected


def test_matching_a_long_pattern_against_a_long_topic_takes_no_backtracking() -> None:
    """The worst case of a backtracking matcher (many wildcards, no match) is linear here."""
    pattern = TopicPattern("*a" * 63 + "b")
    assert not pattern.matches(Topic("a" * 128))


def test_a_grant_without_lists_allows_every_topic() -> None:
    grant = Grant(Uid("alice"), expires=NOW)
    assert grant.may_subscribe(Topic("news"))
    assert grant.may_publish(Topic("bob:inbox"))


def test_a_grant_allows_subscribing_and_publishing_each_by_its_own_list() -> None:
    grant = Grant(
        Uid("alice"), expires=NOW, subscribe=patterns(["alice:*", "news"]), publish=patterns(["alice:*"])
    )
    assert grant.may_subscribe(Topic("news"))
    assert grant.may_subscribe(Topic("alice:inbox"))
    assert not grant.may_subscribe(Topic("bob:inbox"))
    assert grant.may_publish(Topic("alice:inbox"))
    assert not grant.may_publish(Topic("news"))
    with pytest.raises(Forbidden, match="not allowed to publish on news"):
        grant.check_publish(Topic("news"))
    with pytest.raises(Forbidden, match="not allowed to subscribe to bob:inbox"):
        grant.check_subscribe(Topic("bob:inbox"))


def test_an_empty_list_allows_no_topic() -> None:
    """Absent is any topic; present and empty is none: a read-only token has `"publish": []`."""
    grant = Grant(Uid("alice"), expires=NOW, publish=())
    assert grant.may_subscribe(Topic("news"))
    assert not grant.may_publish(Topic("news"))


def test_the_open_grant_allows_everything_and_never_expires() -> None:
    grant = Grant.anything(Uid("alice"))
    assert grant.may_subscribe(Topic("x"))
    assert grant.may_publish(Topic("y"))
    assert grant.seconds_left(NOW) is None


def test_seconds_left_counts_down_to_the_expiry() -> None:
    grant = Grant(Uid("alice"), expires=NOW + timedelta(seconds=90))
    assert grant.seconds_left(NOW) == 90
    assert grant.seconds_left(NOW + timedelta(seconds=100)) == -10


def test_an_expiry_outside_utc_is_refused() -> None:
    with pytest.raises(ValueError, match="UTC"):
        Grant(Uid("alice"), expires=datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=1))))
