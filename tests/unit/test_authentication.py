"""Where the handshake finds a client's token: the Authorization header, else the `token` parameter."""

from __future__ import annotations

import pytest
from websockets.datastructures import Headers
from websockets.http11 import Request

from minimess.adapters.websocket_server.authentication import presented_token
from minimess.domain.errors import InvalidToken

PATH = "/subscribe/id:alice/topic:news"


def request(query: str = "", *authorization: str) -> Request:
    return Request(PATH + query, Headers([("Authorization", value) for value in authorization]))


@pytest.mark.parametrize(
    ("query", "authorization", "expected"),
    [
        ("", (), None),
        ("", ("Bearer abc.def.ghi",), "abc.def.ghi"),
        ("", ("bearer   abc.def.ghi  ",), "abc.def.ghi"),
        ("?token=abc.def.ghi", (), "abc.def.ghi"),
        ("?other=1&token=abc.def.ghi", (), "abc.def.ghi"),
        ("?token=", (), ""),
        ("?other=1", ("Bearer from.the.header",), "from.the.header"),
    ],
)
def test_the_token_comes_from_the_bearer_header_or_the_query(
    query: str, authorization: tuple[str, ...], expected: str | None
) -> None:
    assert presented_token(request(query, *authorization)) == expected


@pytest.mark.parametrize(
    ("query", "authorization", "reason"),
    [
        ("", ("Basic YWxpY2U6cHc=",), "expected Authorization: Bearer <token>"),
        ("", ("Bearer",), "expected Authorization: Bearer <token>"),
        ("", ("Bearer a.b.c", "Bearer d.e.f"), "more than one Authorization header"),
        ("?token=a.b.c&token=d.e.f", (), "more than one token parameter"),
        # One way only (RFC 6750 §2), even when both are the same token.
        ("?token=a.b.c", ("Bearer a.b.c",), "a token both in Authorization and in \\?token=: send one"),
        ("?token=", ("Bearer a.b.c",), "a token both in Authorization and in \\?token=: send one"),
    ],
)
def test_an_ambiguous_or_foreign_credential_is_a_bad_token(
    query: str, authorization: tuple[str, ...], reason: str
) -> None:
    """Refused rather than guessed at: which of two tokens would be the client's?"""
    with pytest.raises(InvalidToken, match=reason):
        presented_token(request(query, *authorization))
