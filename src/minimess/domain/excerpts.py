"""How text a client sent appears in an error reason: a short excerpt, escaped."""

from __future__ import annotations

from typing import Final

EXCERPT_CHARACTERS: Final = 32
"""At most this many characters of what the client sent are echoed back."""


def excerpt(value: object) -> str:
    """`value` quoted for an error reason: its first characters with every control, format or
    other non-printable character escaped, then `…` and its length when it is longer.

    repr() does the escaping (str.isprintable decides, so bidi overrides and zero-width
    characters are escaped too); cutting first keeps the reason short whatever was sent.
    """
    if not isinstance(value, str):
        # A number, list or object where a string belongs: its repr escapes the strings inside.
        shown = repr(value)
        return shown if len(shown) <= EXCERPT_CHARACTERS else f"{shown[:EXCERPT_CHARACTERS]}…"
    if len(value) <= EXCERPT_CHARACTERS:
        return repr(value)
    return f"{value[:EXCERPT_CHARACTERS]!r}… ({len(value):,} characters)"
