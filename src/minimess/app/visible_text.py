"""Text shown to a person as it is: characters a terminal would act on or hide, written as escapes."""

from __future__ import annotations

import re

# What would let one line spill over several, move the cursor or recolour the screen (C0 and C1
# controls, DEL, the line and paragraph separators), reorder what is shown (bidi overrides,
# embeddings, isolates and marks), or hide text between two visible characters (zero-width
# spaces, joiners, word joiner, byte order mark; and what renders as nothing or as blank space
# though it is no space: the soft hyphen, the combining grapheme joiner, the Hangul fillers, the
# Khmer inherent vowels, the Mongolian vowel separator, the invisible operators, and the tag
# characters, which can carry a hidden text of their own); and lone surrogates, which no file can hold.
_INVISIBLE = (
    "\x00-\x1f\x7f-\x9f\xad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u2069\u3164\uffa0\ufeff\u2028\u2029\ud800-\udfff\U000e0000-\U000e007f"
)
_ESCAPED = re.compile(f"[{_INVISIBLE}]")
_ESCAPED_OR_BACKSLASH = re.compile(f"[{_INVISIBLE}\\\\]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
_ESCAPE = re.compile(r"\\(?:x([0-9a-f]{2})|u([0-9a-f]{4})|U([0-9a-f]{8})|(.))", re.DOTALL)
_UNNAMED = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape_text(text: str) -> str:
    """`text` on one line, every invisible character and every backslash written as an escape.

    `\\n`, `\\r`, `\\t` and `\\\\` by name, others as `\\xNN`, `\\uNNNN` or `\\UNNNNNNNN`; every
    backslash in the result starts an escape, so `unescape_text` gives `text` back.
    """
    return _ESCAPED_OR_BACKSLASH.sub(_escape, text)


def unescape_text(line: str) -> str:
    """The text that `escape_text` wrote as `line`."""

    def unescape(match: re.Match[str]) -> str:
        code = match.group(1) or match.group(2) or match.group(3)
        if code is not None:
            return chr(int(code, 16))
        named = _UNNAMED.get(match.group(4))
        if named is None:
            raise ValueError(f"not an escape written by escape_text: {match.group()!r}")
        return named

    return _ESCAPE.sub(unescape, line)


def escape_invisible(text: str) -> str:
    """`text` with its invisible characters written as escapes and its backslashes as they are.

    For text that may already hold escapes, such as a Python repr: readable, not reversible.
    """
    return _ESCAPED.sub(_escape, text)
