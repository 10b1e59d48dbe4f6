"""HS256 tokens: what verifies into which grant, every way a token is refused, and the secret file."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from minimess.adapters.jwt_tokens import HS256Tokens, SecretFileError, read_secret
from minimess.domain.errors import InvalidToken
from minimess.domain.model import Topic, Uid
from minimess.domain.permissions import Grant, patterns

SECRET = b"s" * 32
OTHER_SECRET = b"o" * 32
HOUR = timedelta(hours=1)


def _later() -> int:
    return int((datetime.now(UTC) + HOUR).timestamp())


def _signed(claims: dict[str, Any], secret: bytes = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def _unsigned(claims: dict[str, Any]) -> str:
    """A token with `alg: none` and no signature, as an attacker would write it."""

    def part(document: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@pytest.fixture
def tokens() -> HS256Tokens:
    return HS256Tokens(SECRET)


def test_a_minted_token_verifies_into_the_grant_it_was_minted_with(tokens: HS256Tokens) -> None:
    # Whole seconds, as the claims carry them; not in the future, which `iat` may not be.
    now = datetime.now(UTC).replace(microsecond=0)
    token = tokens.mint(
        Uid("alice"), HOUR, subscribe=patterns(["alice:*", "news"]), publish=patterns(["alice:*"]), now=now
    )
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims == {
        "sub": "alice",
        "iat": int(now.timestamp()),
        "exp": int((now + HOUR).timestamp()),
        "subscribe": ["alice:*", "news"],
        "publish": ["alice:*"],
    }
    assert tokens.verify(token) == Grant(
        Uid("alice"), now + HOUR, subscribe=patterns(["alice:*", "news"]), publish=patterns(["alice:*"])
    )


def test_a_token_without_lists_allows_every_topic(tokens: HS256Tokens) -> None:
    grant = tokens.verify(tokens.mint(Uid("bob"), HOUR))
    assert (grant.uid, grant.subscribe, grant.publish) == (Uid("bob"), None, None)
    assert grant.may_publish(Topic("anything"))


def test_an_empty_list_is_kept_as_none_allowed(tokens: HS256Tokens) -> None:
    grant = tokens.verify(_signed({"sub": "bob", "exp": _later(), "publish": []}))
    assert grant.publish == ()
    assert not grant.may_publish(Topic("news"))


def test_an_exp_with_a_fraction_of_a_second_is_a_number_too(tokens: HS256Tokens) -> None:
    exp = _later() + 0.5
    grant = tokens.verify(_signed({"sub": "bob", "exp": exp}))
    assert grant.expires == datetime.fromtimestamp(exp, UTC)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (_signed({"sub": "alice", "exp": 1}), "token expired"),
        (_signed({"sub": "alice", "exp": _later()}, OTHER_SECRET), "bad token signature"),
        (_unsigned({"sub": "alice", "exp": _later()}), "algorithm not accepted"),
        (_signed({"sub": "alice", "exp": _later()}, SECRET * 2, "HS512"), "algorithm not accepted"),
        (_signed({"sub": "alice"}), "no 'exp' claim"),
        (_signed({"exp": _later()}), "no 'sub' claim"),
        (_signed({"sub": "alice", "exp": _later(), "nbf": _later()}), "not valid yet"),
        ("not-a-token", "malformed token"),
        ("a.b.c", "malformed token"),
        ("", "malformed token"),
    ],
    # Named by what is wrong, not by the token, whose expiry depends on when the tests are collected.
    ids=[
        "expired",
        "other-secret",
        "unsigned",
        "hs512",
        "no-exp",
        "no-sub",
        "nbf-later",
        "not-a-token",
        "three-parts",
        "empty",
    ],
)
def test_an_expired_badly_signed_or_unreadable_token_is_refused(
    tokens: HS256Tokens, token: str, reason: str
) -> None:
    with pytest.raises(InvalidToken, match=reason):
        tokens.verify(token)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": 42}, "malformed token"),
        ({"sub": "bob smith"}, "'sub' is not a valid uid"),
        ({"sub": ""}, "'sub' is not a valid uid"),
        ({"sub": "b" * 65}, "'sub' is not a valid uid"),
        ({"exp": "99999999999"}, "'exp' is not a number"),
        # PyJWT reads true as 1, long past.
        ({"exp": True}, "token expired"),
        ({"exp": 10**30}, "'exp' is out of range"),
        ({"subscribe": "news"}, "'subscribe' is not a list"),
        ({"subscribe": None}, "'subscribe' is not a list"),
        ({"subscribe": ["news", 7]}, "'subscribe' is not a list"),
        ({"subscribe": {"news": True}}, "'subscribe' is not a list"),
        ({"publish": "*"}, "'publish' is not a list"),
        ({"publish": ["news?"]}, "'publish' holds an invalid topic pattern"),
        ({"subscribe": ["a b"]}, "'subscribe' holds an invalid topic pattern"),
        ({"subscribe": [""]}, "'subscribe' holds an invalid topic pattern"),
    ],
)
def test_a_well_signed_token_with_a_malformed_claim_is_refused(
    tokens: HS256Tokens, claims: dict[str, Any], reason: str
) -> None:
    """A claim of the wrong type is not read leniently: the whole token is bad."""
    with pytest.raises(InvalidToken, match=reason):
        tokens.verify(_signed({"sub": "alice", "exp": _later(), **claims}))


def test_a_refusal_never_quotes_the_token(tokens: HS256Tokens) -> None:
    token = _signed({"sub": "alice", "exp": 1})
    with pytest.raises(InvalidToken) as refused:
        tokens.verify(token)
    assert token not in str(refused.value)
    assert token.split(".")[2] not in str(refused.value)


def test_the_secret_file_is_read_without_its_final_line_break(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(SECRET + b"\n")
    assert read_secret(path) == SECRET
    token = HS256Tokens(SECRET).mint(Uid("alice"), HOUR)
    assert HS256Tokens.from_file(path).verify(token).uid == Uid("alice")


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "cannot read"), (b"", "is empty"), (b"\n", "is empty"), (b"x" * 31 + b"\n", "holds 31 bytes")],
)
def test_a_missing_empty_or_short_secret_file_is_refused(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    path = tmp_path / "secret"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SecretFileError, match=reason):
        read_secret(path)
