"""HS256 JSON Web Tokens (PyJWT): the secret file, verifying a token into a grant, and minting one.

Claims: `sub` (the uid) and `exp` (seconds since the Unix epoch) are required; `subscribe` and
`publish` are optional lists of topic patterns (absent: any topic). Only HS256 is accepted, named
explicitly, so a token cannot choose its own algorithm (`none`, or a public key taken as an HMAC
secret). Another verifier of the same port can take RS256/ES256 with a public key file later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt

from minimess.domain.errors import InvalidName, InvalidToken
from minimess.domain.model import Uid
from minimess.domain.permissions import Grant, TopicPattern, patterns

ALGORITHM = "HS256"
# RFC 7518 §3.2: an HMAC key at least as long as the hash output; PyJWT warns below that too.
MIN_SECRET_BYTES = 32
REQUIRED_CLAIMS = ("exp", "sub")
PATTERN_CLAIMS = ("subscribe", "publish")


class SecretFileError(ValueError):
    """A secret file that cannot serve: missing, unreadable, empty or too short."""


def read_secret(path: str | Path) -> bytes:
    """The secret in `path`, without the line break an editor or `echo` leaves at its end."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise SecretFileError(f"cannot read {path}: {error.strerror or error}") from None
    secret = data.rstrip(b"\r\n")
    if not secret:
        raise SecretFileError(f"{path} is empty")
    if len(secret) < MIN_SECRET_BYTES:
        raise SecretFileError(
            f"{path} holds {len(secret)} bytes; an HS256 secret needs at least {MIN_SECRET_BYTES}"
            f" (for example: openssl rand -base64 48 > {path})"
        )
    return secret


class HS256Tokens:
    """Verifies and mints tokens signed with one shared secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise SecretFileError(f"an HS256 secret needs at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret

    @classmethod
    def from_file(cls, path: str | Path) -> HS256Tokens:
        return cls(read_secret(path))

    def verify(self, token: str) -> Grant:
        """The grant `token` carries; InvalidToken, with a one-line reason, for any other token."""
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], options={"require": list(REQUIRED_CLAIMS)}
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("bad token signature") from None
        except jwt.InvalidAlgorithmError:
            raise InvalidToken(f"token algorithm not accepted (only {ALGORITHM})") from None
        except jwt.MissingRequiredClaimError as error:
            raise InvalidToken(f"malformed token: no {error.claim!r} claim") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("token not valid yet") from None
        except jwt.InvalidTokenError:
            # PyJWT's own messages never quote the token, but one fixed reason is enough here.
            raise InvalidToken("malformed token") from None
        return _grant(claims)

    def mint(
        self,
        uid: Uid,
        lifetime: timedelta,
        subscribe: Sequence[TopicPattern] | None = None,
        publish: Sequence[TopicPattern] | None = None,
        now: datetime | None = None,
    ) -> str:
        """A token for `uid` valid for `lifetime` from `now`, limited to the pattern lists given."""
        issued = datetime.now(UTC) if now is None else now
        claims: dict[str, Any] = {
            "sub": uid.value,
            "iat": math.floor(issued.timestamp()),
            "exp": math.floor((issued + lifetime).timestamp()),
        }
        if subscribe is not None:
            claims["subscribe"] = [pattern.text for pattern in subscribe]
        if publish is not None:
            claims["publish"] = [pattern.text for pattern in publish]
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)


def _grant(claims: Mapping[str, Any]) -> Grant:
    """The grant that verified claims describe; InvalidToken when one has the wrong type or value."""
    subject, expiry = claims["sub"], claims["exp"]
    try:
        uid = Uid(subject)
    except InvalidName:
        raise InvalidToken("malformed token: 'sub' is not a valid uid") from None
    # PyJWT takes any value int() takes (a numeric string, true); the claim is a number.
    if isinstance(expiry, bool) or not isinstance(expiry, (int, float)) or not math.isfinite(expiry):
        raise InvalidToken("malformed token: 'exp' is not a number")
    try:
        expires = datetime.fromtimestamp(expiry, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidToken("malformed token: 'exp' is out of range") from None
    lists = {name: _patterns(claims, name) for name in PATTERN_CLAIMS}
    return Grant(uid, expires, subscribe=lists["subscribe"], publish=lists["publish"])


def _patterns(claims: Mapping[str, Any], name: str) -> tuple[TopicPattern, ...] | None:
    if name not in claims:
        return None
    value = claims[name]
    if not isinstance(value, list) or not all(isinstance(text, str) for text in value):
        raise InvalidToken(f"malformed token: {name!r} is not a list of topic patterns")
    try:
        return patterns(value)
    except InvalidName:
        raise InvalidToken(f"malformed token: {name!r} holds an invalid topic pattern") from None
