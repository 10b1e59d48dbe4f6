"""The token a client presents: given once, or read again from a file before every connection."""

from __future__ import annotations

import re
from pathlib import Path

from minimess.domain.errors import CannotAuthenticate

# RFC 6750 §2.1: what a bearer token may hold; a JWT is three base64url parts joined by dots.
BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")


def check_token(token: str) -> str:
    """`token` if it can go in an Authorization header as a bearer token; ValueError otherwise."""
    if BEARER_TOKEN.fullmatch(token) is None:
        raise ValueError("a token is one word of [A-Za-z0-9._~+/-] (a JWT, as minimess token prints)")
    return token


class Credentials:
    """A fixed token, or a token file read anew on every connection, so that it can be rotated."""

    def __init__(self, token: str | None = None, token_file: str | None = None) -> None:
        self._token = token
        self._file = None if token_file is None else Path(token_file)

    def token(self) -> str | None:
        """The token to present now; None without one. CannotAuthenticate if the file cannot serve."""
        if self._file is None:
            return None if self._token is None else self._checked(self._token, "--token")
        try:
            text = self._file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            detail = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            raise CannotAuthenticate(f"cannot read the token file {self._file}: {detail}") from None
        return self._checked(text, f"the token file {self._file}")

    @staticmethod
    def _checked(token: str, source: str) -> str:
        try:
            return check_token(token.strip())
        except ValueError as error:
            raise CannotAuthenticate(f"{source} holds no token: {error}") from None
