"""A client frame's `ref`, read without parsing the frame: what a frame dropped unread is answered with."""

from __future__ import annotations

import json
import re
from typing import Final

from minimess.adapters.wire.client_frames import is_valid_ref

# Characters examined at each end of a frame. A dropped frame must cost the server about what
# dropping it unread did, whatever the client puts in it: a full parse of a 64 KiB frame of small
# tokens takes milliseconds. Wide enough for a `ref` of 128 characters written `\uXXXX`.
WINDOW: Final = 1024
# Blanks looked through between a `ref` key and the `{` or `,` before it.
_MAX_INDENT: Final = 64
# Other members looked through on the way to `ref`: v1 frames have six fields; a bound keeps a
# window full of tiny members from costing a regex step each.
_MAX_OTHERS: Final = 8

_SPACE = r"[ \t\n\r]*+"
# A JSON string token, escapes and all (its text is only decoded once it is known to be the ref).
_STRING = r'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
_SCALAR = rf"(?:{_STRING}|[-0-9][-+.0-9eE]*+|true|false|null)"
# A key other than `ref`, written without escapes: `r\u0065f` is `ref` to a parser, so a key with
# escapes ends the search rather than be taken for another.
_OTHER_MEMBER = rf'"(?!ref")[^"\\]*+"{_SPACE}:{_SPACE}{_SCALAR}'

# `ref` after nothing but other members with plain values, from the frame's first character.
_REF_LEADING = re.compile(
    rf"{_SPACE}\{{{_SPACE}(?:{_OTHER_MEMBER}{_SPACE},{_SPACE}){{0,{_MAX_OTHERS}}}+"
    rf'"ref"{_SPACE}:{_SPACE}({_STRING}){_SPACE}[,}}]'
)
# What may stand before a `ref` key (searched up to the key). Inside a JSON string every `"`
# follows a backslash, so a `"ref"` after these is a real key (of the frame, or of an object in it).
_BEFORE_KEY = re.compile(rf"[{{,]{_SPACE}\Z")
# From the last `ref` key on: its value, then only other members with plain values, then the end
# of the frame. Then no object encloses that key (it is the frame's own), and a parser keeps it
# when the key is repeated.
_REF_TRAILING = re.compile(
    rf'"ref"{_SPACE}:{_SPACE}({_STRING})(?:{_SPACE},{_SPACE}{_OTHER_MEMBER}){{0,{_MAX_OTHERS}}}+{_SPACE}\}}{_SPACE}'
)


def dropped_frame_ref(data: str | bytes) -> str | None:
    """The frame's `ref` when plain members alone stand between it and the frame's start or end.

    Reads at most WINDOW characters at each end, whatever the frame's size, and does not check
    the rest: a broken frame may still have its ref read. None when no ref is found that way.
    """
    if not isinstance(data, str):
        return None
    last = data.rfind('"ref"', max(0, len(data) - WINDOW))
    if (
        last > 0
        and _BEFORE_KEY.search(data, max(0, last - _MAX_INDENT), last)
        and (trailing := _REF_TRAILING.fullmatch(data, last))
    ):
        return _decoded(trailing.group(1))
    if leading := _REF_LEADING.match(data, 0, WINDOW):
        return _decoded(leading.group(1))
    return None


def _decoded(token: str) -> str | None:
    """The text of a JSON string token; None when it is not valid JSON or not a valid ref."""
    try:
        ref = json.loads(token)
    except ValueError:
        return None
    return ref if is_valid_ref(ref) else None
