"""What Tab offers at the client's prompt: command words, and topics after a command that takes one."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from minimess.app.client_commands import COMMAND_WORDS, TOPIC_COMMAND_WORDS
from minimess.domain.model import Topic


@attrs.frozen
class Completions:
    """The words that may replace `partial`, the word being typed (the text before the cursor)."""

    partial: str
    words: tuple[str, ...]


def complete(before_cursor: str, attached: bool, topics: Iterable[Topic]) -> Completions:
    """What may replace the last word of `before_cursor`: a command word where a command starts,
    a topic after `sub`, `unsub`, `attach` or `pub`, nothing else.

    Attached, a command starts with `/` and a line without one is a message: it is left alone.
    """
    words = before_cursor.split()
    partial = "" if not words or before_cursor[-1].isspace() else words[-1]
    index = len(words) - 1 if partial else len(words)
    slash = "/" if attached else ""
    if index == 0:
        if attached and not partial.startswith("/"):
            return Completions(partial, ())
        # Detached a `/` is allowed: keep whichever way the user writes commands.
        prefix = "/" if partial.startswith("/") else slash
        candidates = sorted(prefix + word for word in COMMAND_WORDS)
    elif index == 1 and words[0].startswith(slash) and words[0].removeprefix("/") in TOPIC_COMMAND_WORDS:
        candidates = [str(topic) for topic in topics]
    else:
        return Completions(partial, ())
    return Completions(partial, tuple(word for word in candidates if word.startswith(partial)))
