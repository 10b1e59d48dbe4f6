"""The request path that opens a connection: `/subscribe/id:<uid>[/topic:<topic>...]`."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minimess.adapters.wire.paths import PathError, SubscribeRequest, parse_subscribe_path, subscribe_path
from minimess.domain.model import TOPIC_PATTERN, UID_PATTERN, Topic, Uid


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
