"""Reading a dropped frame's `ref` without parsing it: found where clients put it, never a wrong one."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from minimess.adapters.wire.client_frames import MAX_REF_LENGTH, Pub, Sub, client_frame_text, is_valid_ref
from minimess.adapters.wire.frame_ref import WINDOW, dropped_frame_ref
from minimess.domain.model import Position, Topic

BIG = "x" * 60_000


@pytest.mark.parametrize(
    "text",
    [
        client_frame_text(Pub(Topic("news"), "hi", "c-1")),
        client_frame_text(Pub(Topic("news"), BIG, "c-1", sent=1, id="a" * 32)),
        client_frame_text(Sub(Topic("news"), "c-1", Position("mem-0", 3))),
        json.dumps({"type": "pub", "topic": "news", "body": BIG, "ref": "c-1"}),
        json.dumps({"ref": "c-1", "type": "pub", "topic": "news", "body": BIG}),
        json.dumps({"type": "pub", "ref": "c-1", "topic": "news", "body": BIG}, indent=2),
        # minimess bench: `sent` after `ref`.
        json.dumps({"type": "pub", "topic": "news", "body": BIG, "ref": "c-1", "sent": 17}),
        json.dumps({"type": "sub", "ref": "c-1", "since": {"epoch": "e", "offset": 2}, "topic": "news"}),
        '{"type":"pub","ref":"c-1","body":"unterminated',
        '{"since":{"ref":"nested"},"ref":"c-1"}',
        '{"ref":"c-1","since":{"ref":"nested"}}',
        '{"ref":"earlier","ref":"c-1"}',
        '{"ref":"c\\u002d1"}',
    ],
    ids=[
        "client-pub",
        "client-pub-big",
        "client-sub-since",
        "ref-last",
        "ref-first",
        "indented",
        "bench",
        "before-since",
        "broken-after-ref",
        "after-nested-ref",
        "before-nested-ref",
        "repeated-last-wins",
        "escaped",
    ],
)
def test_the_ref_is_read_where_clients_write_it(text: str) -> None:
    assert dropped_frame_ref(text) == "c-1"


@pytest.mark.parametrize(
    "data",
    [
        b'{"ref":"c-1"}',
        "not json",
        '{"type":"pub"}',
        '{"ref":7}',
        '{"ref":null}',
        json.dumps({"ref": "r" * (MAX_REF_LENGTH + 1)}),
        '{"ref":"\\ud800"}',
        '{"ref":"raw\ncontrol"}',
        '{"a":{"ref":"nested"}}',
        '["x",{"ref":"in an array"}]',
        '{"body":"\\"ref\\":\\"inside a string\\"}"}',
        '{"body":",\\"ref\\":\\"inside\\"","a":1}',
        '{"r\\u0065f":"escaped key","x":{"y":1}}',
        # Past the window at both ends: found only by a parse, which costs what the frame holds.
        json.dumps({"type": "pub", "body": BIG, "ref": "middle", "extra": BIG}),
    ],
    ids=[
        "binary",
        "not-json",
        "no-ref",
        "number",
        "null",
        "too-long",
        "lone-surrogate",
        "raw-control",
        "nested-only",
        "array",
        "in-a-string",
        "in-a-string-then-member",
        "escaped-key",
        "middle-of-a-big-frame",
    ],
)
def test_no_ref_is_read_where_a_parse_would_find_none_valid_or_it_lies_past_the_window(
    data: str | bytes,
) -> None:
    assert dropped_frame_ref(data) is None


def test_only_the_window_at_each_end_is_read() -> None:
    """Members before the ref and an object after it push it out of reach; a shorter one is found."""
    ref_after = '{"type":"pub","body":"' + "x" * WINDOW + '","ref":"c-1","sent":1}'
    assert dropped_frame_ref(ref_after) == "c-1"
    for pad, found in [("x" * WINDOW, None), ("x" * 100, "c-1")]:
        assert dropped_frame_ref('{"pad":"' + pad + '","ref":"c-1","more":{}}') == found


_SCALARS = st.one_of(
    st.text(max_size=20),
    st.integers(),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
_KEYS = st.sampled_from(["type", "topic", "body", "ref", "since", "sent", "r", 'ref"', "\\ref"]) | st.text(
    max_size=6
)


@given(
    members=st.lists(st.tuples(_KEYS, st.one_of(st.text(max_size=140), _VALUES)), max_size=8),
    ensure_ascii=st.booleans(),
    indent=st.sampled_from([None, 0, 2]),
)
@example(members=[("ref", "a"), ("ref", "b")], ensure_ascii=True, indent=None)
@example(members=[("body", '","ref":"x"}'), ("a", 1)], ensure_ascii=True, indent=None)
@example(members=[("a", {"ref": "x"}), ("ref", 1)], ensure_ascii=True, indent=None)
def test_a_ref_read_is_one_the_frame_gives_and_the_parsers_when_given_once(
    members: list[tuple[str, Any]], ensure_ascii: bool, indent: int | None
) -> None:
    """Any JSON object, in any order: None, or a ref of the frame's own; found if plain and short."""
    keys = [json.dumps(key, ensure_ascii=ensure_ascii) for key, _ in members]
    values = [json.dumps(value, ensure_ascii=ensure_ascii, indent=indent) for _, value in members]
    text = "{" + ",".join(f"{key}:{value}" for key, value in zip(keys, values, strict=True)) + "}"
    refs = [value for key, value in members if key == "ref"]
    found = dropped_frame_ref(text)
    if len(refs) == 1 or found is None:
        # json keeps the last of repeated keys; when the ref is found from the start it is the first.
        assert found is None or found == json.loads(text)["ref"]
    else:
        assert found in refs
    parsed = json.loads(text).get("ref")
    plain = all(not isinstance(value, list | dict) for _, value in members)
    if plain and is_valid_ref(parsed) and len(text) <= WINDOW and not any("\\" in key for key in keys):
        assert found is not None


@given(st.text(max_size=300))
def test_any_text_is_answered_without_an_error(text: str) -> None:
    found = dropped_frame_ref(text)
    assert found is None or isinstance(found, str)
