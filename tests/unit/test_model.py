"""Invariants of the domain values: valid names, frozen values equal by value, UTC messages."""

from __future__ import annotations

import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minimess.domain.errors import InvalidName, MinimessError
from minimess.domain.model import Message, Subscription, Topic, Uid

UID_CHARACTERS = frozenset(string.ascii_letters + string.digits + "_.-")
TOPIC_CHARACTERS = UID_CHARACTERS | {":"}
NOW = datetime(2026, 11, 28, 3, 55, 13, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "Z",
        "7",
        "_",
        ".",
        "-",
        "x" * 64,
        string.ascii_lowercase,
        string.ascii_uppercase,
        string.digits,
        "bob_the.builder-2",
    ],
)
def test_uid_accepts_every_allowed_character_class_and_length_1_to_64(name: str) -> None:
    """A uid of 1 to 64 letters, digits, `_`, `.` or `-` is accepted and keeps its value."""
    assert Uid(name).value == name
    assert str(Uid(name)) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x" * 65,
        "a:b",
        "a b",
        "a/b",
        "a?b",
        "a%3Ab",
        "bob\n",
        "\n",
        "é",
        "bob\x00",
        "٣",
    ],
)
def test_uid_rejects_empty_too_long_or_bad_characters(name: str) -> None:
    """An empty uid, one over 64 characters, or one with any other character raises InvalidName."""
    with pytest.raises(InvalidName, match="uid"):
        Uid(name)


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "Z",
        "7",
        "_",
        ".",
        "-",
        ":",
        "x" * 128,
        "afrozalm:mala:zorfa",
        string.ascii_letters + string.digits + "_.:-",
    ],
)
def test_topic_accepts_every_allowed_character_class_and_length_1_to_128(name: str) -> None:
    """A topic of 1 to 128 letters, digits, `_`, `.`, `:` or `-` is accepted and keeps its value."""
    assert Topic(name).name == name
    assert str(Topic(name)) == name


@pytest.mark.parametrize(
    "name",
    ["", "x" * 129, "a b", "a/b", "a?b", "a#b", "a%3Ab", "news\n", "\n", "ünïcode", "news\x00", "٣"],
)
def test_topic_rejects_empty_too_long_or_bad_characters(name: str) -> None:
    """An empty topic, one over 128 characters, or one with any other character raises InvalidName."""
    with pytest.raises(InvalidName, match="topic"):
        Topic(name)


@pytest.mark.parametrize("value", [None, 1, 1.5, b"bob", ["bob"], Uid("bob")])
@pytest.mark.parametrize("kind", [Uid, Topic])
def test_names_that_are_not_str_raise_invalid_name(kind: type[Uid] | type[Topic], value: object) -> None:
    """A uid or topic that is not a str raises InvalidName, not TypeError."""
    with pytest.raises(InvalidName):
        kind(value)  # type: ignore[arg-type]


def test_invalid_name_is_a_minimess_error_and_a_value_error() -> None:
    """InvalidName can be caught as the project's base error and as a ValueError."""
    assert issubclass(InvalidName, MinimessError)
    assert issubclass(InvalidName, ValueError)


@given(st.text(alphabet=[*sorted(TOPIC_CHARACTERS), " ", "/", "é", "\n"], max_size=140))
def test_uid_is_accepted_exactly_when_its_characters_and_length_are_allowed(name: str) -> None:
    """Uid's rule agrees with an independent statement of it on arbitrary candidate names."""
    valid = 1 <= len(name) <= 64 and set(name) <= UID_CHARACTERS
    try:
        Uid(name)
    except InvalidName:
        assert not valid
    else:
        assert valid


@given(st.text(alphabet=[*sorted(TOPIC_CHARACTERS), " ", "/", "é", "\n"], max_size=140))
def test_topic_is_accepted_exactly_when_its_characters_and_length_are_allowed(name: str) -> None:
    """Topic's rule agrees with an independent statement of it on arbitrary candidate names."""
    valid = 1 <= len(name) <= 128 and set(name) <= TOPIC_CHARACTERS
    try:
        Topic(name)
    except InvalidName:
        assert not valid
    else:
        assert valid


def _message() -> Message:
    return Message(id="m-1", topic=Topic("news"), sender=Uid("alice"), body="hi", timestamp=NOW)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (Uid("bob"), "value"),
        (Topic("news"), "name"),
        (_message(), "body"),
        (Subscription(Uid("bob"), Topic("news")), "topic"),
    ],
)
def test_values_are_frozen(value: object, field: str) -> None:
    """Assigning to a field of a domain value raises instead of changing it."""
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(value, field, "changed")


@pytest.mark.parametrize(
    ("make", "other"),
    [
        (lambda: Uid("bob"), Uid("alice")),
        (lambda: Topic("news"), Topic("sport")),
        (_message, attrs.evolve(_message(), body="bye")),
        (lambda: Subscription(Uid("bob"), Topic("news")), Subscription(Uid("bob"), Topic("sport"))),
    ],
)
def test_values_are_equal_and_hash_equal_by_value(make: Callable[[], object], other: object) -> None:
    """Two values built from the same fields are equal and hash alike; a different field differs."""
    first, second = make(), make()
    assert first is not second
    assert first == second
    assert hash(first) == hash(second)
    assert len({first, second}) == 1
    assert first != other


def test_a_uid_and_a_topic_with_the_same_text_are_not_equal() -> None:
    """Equality is by type and value: Uid("news") is not Topic("news")."""
    uid: object = Uid("news")
    assert uid != Topic("news")


def test_message_create_gives_each_message_a_unique_id() -> None:
    """A thousand messages created with the same fields get a thousand distinct non-empty ids."""
    ids = {Message.create(Topic("news"), Uid("alice"), "hi", NOW).id for _ in range(1000)}
    assert len(ids) == 1000
    assert all(isinstance(i, str) and i for i in ids)


def test_message_create_keeps_its_fields() -> None:
    """Message.create stamps the message with `now` and keeps topic, sender and body."""
    message = Message.create(Topic("news"), Uid("alice"), "hi", NOW)
    assert (message.topic, message.sender, message.body, message.timestamp) == (
        Topic("news"),
        Uid("alice"),
        "hi",
        NOW,
    )


def test_message_create_keeps_milliseconds_only() -> None:
    """Created messages carry the millisecond the wire and the bus can carry, no finer."""
    moment = NOW.replace(microsecond=123456)
    assert Message.create(Topic("news"), Uid("alice"), "hi", moment).timestamp == NOW


@pytest.mark.parametrize(
    "moment",
    [NOW, NOW.replace(tzinfo=timezone.utc), NOW.replace(tzinfo=timezone(timedelta(0)))],  # noqa: UP017
)
def test_message_accepts_utc_timestamps(moment: datetime) -> None:
    """Any timezone-aware timestamp at offset zero is UTC and is accepted."""
    assert Message.create(Topic("news"), Uid("alice"), "hi", moment).timestamp == moment


@pytest.mark.parametrize(
    "moment",
    [
        NOW.replace(tzinfo=None),
        NOW.astimezone(timezone(timedelta(hours=2))),
        NOW.astimezone(timezone(timedelta(hours=-5, minutes=-30))),
    ],
    ids=["naive", "plus-2h", "minus-5h30"],
)
def test_message_rejects_naive_or_non_utc_timestamps(moment: datetime) -> None:
    """A naive timestamp, or one at a non-zero offset (even for the same instant), raises ValueError."""
    with pytest.raises(ValueError, match="UTC"):
        Message.create(Topic("news"), Uid("alice"), "hi", moment)
