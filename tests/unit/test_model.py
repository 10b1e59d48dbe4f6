"""Invariants of the domain values: valid names, unique UTC messages stamped to the millisecond."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta, timezone

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from minimess.domain.errors import InvalidName
from minimess.domain.model import Message, Position, Topic, Uid

UID_CHARACTERS = frozenset(string.ascii_letters + string.digits + "_.-")
TOPIC_CHARACTERS = UID_CHARACTERS | {":"}
# Characters a loose pattern might let through: \d and \w match "٣" and "é", `$` matches before "\n".
CANDIDATES = [*sorted(TOPIC_CHARACTERS), " ", "/", "?", "#", "%", "é", "٣", "\n", "\x00"]
NOW = datetime(2026, 11, 28, 3, 55, 13, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "allowed", "longest"), [(Uid, UID_CHARACTERS, 64), (Topic, TOPIC_CHARACTERS, 128)]
)
@given(name=st.text(alphabet=CANDIDATES, max_size=140))
@example(name="bob\n")
@example(name="x" * 64)
@example(name="x" * 65)
@example(name="x" * 128)
@example(name="x" * 129)
def test_a_name_is_valid_exactly_when_its_characters_and_length_are_allowed(
    kind: type[Uid | Topic], allowed: frozenset[str], longest: int, name: str
) -> None:
    if 1 <= len(name) <= longest and set(name) <= allowed:
        assert str(kind(name)) == name
    else:
        with pytest.raises(InvalidName, match=kind.__name__.lower()):
            kind(name)


@pytest.mark.parametrize("value", [None, 1, b"bob", ["bob"], Uid("bob")])
@pytest.mark.parametrize("kind", [Uid, Topic])
def test_a_name_that_is_not_a_str_is_an_invalid_name_not_a_type_error(
    kind: type[Uid | Topic], value: object
) -> None:
    with pytest.raises(InvalidName):
        kind(value)  # type: ignore[arg-type]


def test_message_create_keeps_its_fields_and_stamps_now_to_the_millisecond() -> None:
    """Milliseconds are what the wire and the bus carry, so every copy of a message agrees."""
    headers = {"trace-sent-us": "1"}
    message = Message.create(Topic("news"), Uid("alice"), "hi", NOW.replace(microsecond=123456), headers)
    assert (message.topic, message.sender, message.body, message.timestamp, message.headers) == (
        Topic("news"),
        Uid("alice"),
        "hi",
        NOW,
        headers,
    )


@given(st.datetimes(min_value=datetime(1, 1, 2), timezones=st.just(UTC)))
def test_a_message_is_stamped_with_now_down_to_its_millisecond(now: datetime) -> None:
    message = Message.create(Topic("news"), Uid("alice"), "hi", now)
    assert message.timestamp == now.replace(microsecond=now.microsecond // 1000 * 1000)
    assert message.timestamp.tzinfo is UTC


def test_message_create_gives_each_message_a_unique_id() -> None:
    ids = {Message.create(Topic("news"), Uid("alice"), "hi", NOW).id for _ in range(1000)}
    assert len(ids) == 1000
    assert "" not in ids


@pytest.mark.parametrize(
    ("moment", "is_utc"),
    [
        (NOW, True),
        (NOW.replace(tzinfo=timezone(timedelta(0))), True),
        (NOW.replace(tzinfo=None), False),
        (NOW.astimezone(timezone(timedelta(hours=2))), False),
        (NOW.astimezone(timezone(timedelta(hours=-5, minutes=-30))), False),
    ],
    ids=["utc", "offset-zero", "naive", "plus-2h", "minus-5h30"],
)
def test_a_message_timestamp_must_be_utc_even_for_the_same_instant(moment: datetime, is_utc: bool) -> None:
    if is_utc:
        assert Message.create(Topic("news"), Uid("alice"), "hi", moment).timestamp == moment
    else:
        with pytest.raises(ValueError, match="UTC"):
            Message.create(Topic("news"), Uid("alice"), "hi", moment)


def test_a_message_at_a_position_is_the_same_message_with_that_position_and_nothing_else_changed() -> None:
    message = Message.create(
        Topic("news"), Uid("alice"), "hi", datetime(2026, 1, 2, tzinfo=UTC), headers={"k": "v"}
    )
    placed = message.at(Position("epoch-1", 7))
    # Every field, position included (evolve copies them all, whatever fields Message gains).
    assert attrs.asdict(placed, recurse=False) == attrs.asdict(
        attrs.evolve(message, position=Position("epoch-1", 7)), recurse=False
    )
    assert placed.position == Position("epoch-1", 7)
