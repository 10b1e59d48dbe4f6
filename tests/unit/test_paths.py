"""The request path that opens a connection: `/subscribe/id:<uid>[/topic:<topic>[@<epoch>:<offset>]...]`."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minimess.adapters.wire.paths import PathError, SubscribeRequest, parse_subscribe_path, subscribe_path
from minimess.domain.model import EPOCH_PATTERN, MAX_OFFSET, TOPIC_PATTERN, UID_PATTERN, Position, Topic, Uid


@pytest.mark.parametrize(
    ("path", "uid", "topics"),
    [
        ("/subscribe/id:bob", "bob", ()),
        ("/subscribe/id:bob/", "bob", ()),
        ("/subscribe/id:bob/topic:news/", "bob", ("news",)),
        (
            "/subscribe/id:bob/topic:news/topic:afrozalm:mala:zorfa/topic:a.b_c-d",
            "bob",
            ("news", "afrozalm:mala:zorfa", "a.b_c-d"),
        ),
        ("/subscribe/id:bob/topic:news?since=1&x=/y", "bob", ("news",)),
        ("/subscribe/id:bob/topic:news/?x=1", "bob", ("news",)),
        ("/subscribe/id:bob?x", "bob", ()),
        ("/subscribe/id:bob/topic:b/topic:a/topic:b", "bob", ("b", "a")),
        (f"/subscribe/id:{'u' * 64}/topic:{'t' * 128}", "u" * 64, ("t" * 128,)),
    ],
)
def test_a_subscribe_path_gives_its_uid_and_distinct_topics_in_order(
    path: str, uid: str, topics: tuple[str, ...]
) -> None:
    """A trailing slash and the query string are ignored."""
    assert parse_subscribe_path(path, max_topics=3) == SubscribeRequest(
        uid=Uid(uid), topics=tuple(Topic(t) for t in topics)
    )


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        ("/", 404, "no such endpoint"),
        ("", 404, "no such endpoint"),
        ("/subscribe", 404, "no such endpoint"),
        ("/subscribe?id:bob", 404, "no such endpoint"),
        ("/sub/id:bob", 404, "no such endpoint"),
        ("/SUBSCRIBE/id:bob", 404, "no such endpoint"),
        ("/api/subscribe/id:bob", 404, "no such endpoint"),
        ("/subscribe/", 400, "expected /subscribe/id:<uid>"),
        ("/subscribe/bob", 400, "expected /subscribe/id:<uid>"),
        ("/subscribe/topic:news/id:bob", 400, "expected /subscribe/id:<uid>"),
        ("/subscribe/id:", 400, "invalid uid"),
        ("/subscribe/id:bob:smith", 400, "invalid uid"),
        ("/subscribe/id:bob/news", 400, "unexpected segment 'news'"),
        ("/subscribe/id:bob//topic:news", 400, "unexpected segment ''"),
        ("/subscribe/id:bob/topic:news//", 400, "unexpected segment ''"),
        ("/subscribe/id:bob/topic:", 400, "invalid topic"),
        ("/subscribe/id:bob/topic:a%20b", 400, "invalid topic"),
        ("/subscribe/id:bob/topic:a%2Fb", 400, "invalid topic"),
        ("/subscribe/id:bob/topic:a/topic:b/topic:c/topic:d", 400, "at most 3 topics"),
        ("/subscribe/id:bob/topic:news@e", 400, "invalid position 'e'"),
        ("/subscribe/id:bob/topic:news@e:", 400, "invalid position"),
        ("/subscribe/id:bob/topic:news@e:--1", 400, "invalid position"),
        ("/subscribe/id:bob/topic:news@e:-2", 400, "invalid position"),
        ("/subscribe/id:bob/topic:news@e:１", 400, "invalid position"),
        ("/subscribe/id:bob/topic:news@e:9223372036854775808", 400, "invalid position"),
        ("/subscribe/id:bob/topic:news@:1", 400, "invalid epoch"),
        ("/subscribe/id:bob/topic:news@e%2Fx:1", 400, "invalid epoch"),
        ("/subscribe/id:bob/topic:news@e@f:1", 400, "invalid epoch"),
    ],
)
def test_another_endpoint_is_a_404_and_a_malformed_path_a_400_saying_why(
    path: str, status: int, reason: str
) -> None:
    with pytest.raises(PathError) as caught:
        parse_subscribe_path(path, max_topics=3)
    assert caught.value.status == status
    assert reason in caught.value.reason
    assert "\n" not in caught.value.reason


@given(
    st.from_regex(UID_PATTERN, fullmatch=True).map(Uid),
    st.lists(st.from_regex(TOPIC_PATTERN, fullmatch=True).map(Topic), max_size=5, unique=True),
)
def test_subscribe_path_is_what_parse_subscribe_path_reads_back(uid: Uid, topics: list[Topic]) -> None:
    request = SubscribeRequest(uid=uid, topics=tuple(topics))
    assert parse_subscribe_path(subscribe_path(uid, tuple(topics)), max_topics=5) == request


def test_a_topic_may_carry_the_position_to_recover_after() -> None:
    """`@<epoch>:<offset>`: the epoch has no ":", so the last ":" splits; -1 is before the first message."""
    request = parse_subscribe_path(
        f"/subscribe/id:bob/topic:a:b@Xy_z-9.3:-1/topic:news/topic:c@e:{MAX_OFFSET}", max_topics=3
    )
    assert request.topics == (Topic("a:b"), Topic("news"), Topic("c"))
    assert request.since == {Topic("a:b"): Position("Xy_z-9.3", -1), Topic("c"): Position("e", MAX_OFFSET)}


@given(
    st.from_regex(UID_PATTERN, fullmatch=True).map(Uid),
    st.dictionaries(
        st.from_regex(TOPIC_PATTERN, fullmatch=True).map(Topic),
        st.builds(Position, st.from_regex(EPOCH_PATTERN, fullmatch=True), st.integers(-1, MAX_OFFSET)),
        max_size=5,
    ),
)
def test_positions_in_a_subscribe_path_are_read_back(uid: Uid, since: dict[Topic, Position]) -> None:
    topics = tuple(since)
    request = parse_subscribe_path(subscribe_path(uid, topics, since), max_topics=5)
    assert (request.topics, request.since) == (topics, since)
