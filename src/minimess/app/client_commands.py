"""What a line typed into the terminal client means: a command, a message, or a mistake."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from minimess.app.visible_text import escape_text
from minimess.domain.errors import InvalidName
from minimess.domain.model import TOPIC_PATTERN, Topic

DETACH = "//"
# Attached, `// ` and then text sends the text as it is: the way to send a line starting with `/`.
ESCAPE = "// "

HELP = """\
commands:
  sub <topic>          subscribe to a topic
  unsub <topic>        unsubscribe from a topic
  attach <topic>       subscribe if needed, and send what you type to the topic
  //                   detach: lines are commands again
  // <text>            attached: send text as it is, / at its start included
  pub <topic> <text>   send text to a topic, attached or not
  topics               list your topics
  reconnect (or Enter) while disconnected, try to connect now
  help                 this list
  quit (or Ctrl-D)     leave
while attached, start a command with / (/pub, /unsub, /quit, ...); any other line is a message,
but a line starting with / that is no command is refused: "// /etc/hosts" sends "/etc/hosts"
Tab completes commands and topics; Ctrl-C clears the line"""


class CommandError(Exception):
    """A line that does not make sense; its message is the one-line explanation for the user."""


@attrs.frozen
class Subscribe:
    topic: Topic


@attrs.frozen
class Unsubscribe:
    topic: Topic


@attrs.frozen
class Attach:
    topic: Topic


@attrs.frozen
class Detach:
    pass


@attrs.frozen
class Publish:
    topic: Topic
    body: str
    # A `pub` command, whose ack is shown; an attached line's echo (its topic is subscribed) shows it.
    by_command: bool = attrs.field(default=False, kw_only=True)


@attrs.frozen
class ListTopics:
    pass


@attrs.frozen
class Help:
    pass


@attrs.frozen
class Quit:
    pass


@attrs.frozen
class Reconnect:
    pass


Command = Subscribe | Unsubscribe | Attach | Detach | Publish | ListTopics | Help | Quit | Reconnect

_TOPIC_COMMANDS: dict[str, Callable[[Topic], Command]] = {
    "sub": Subscribe,
    "unsub": Unsubscribe,
    "attach": Attach,
}
_BARE_COMMANDS: dict[str, Callable[[], Command]] = {
    "topics": ListTopics,
    "help": Help,
    "quit": Quit,
    "exit": Quit,
    "reconnect": Reconnect,
}
COMMAND_WORDS = frozenset({*_TOPIC_COMMANDS, *_BARE_COMMANDS, "pub"})
_PUB_USAGE = "pub <topic> <text>"
# The commands whose first argument is a topic.
TOPIC_COMMAND_WORDS = frozenset({*_TOPIC_COMMANDS, "pub"})


def parse_line(line: str, attached: Topic | None) -> Command | None:
    """The command `line` stands for, given the attached topic; None for a blank line.

    Attached, a line is a message to the attached topic unless it starts with `/`: `//` detaches,
    `// <text>` sends `<text>` as it is, `/<command>` is a command, and any other line starting
    with `/` is a CommandError (never sent: it is most likely a mistyped command). Detached,
    commands need no `/`, and anything else is a CommandError. So is a line that is not valid
    UTF-8 (lone surrogates, from a terminal in another encoding), attached or not.
    """
    if not _is_unicode(line):
        raise CommandError(
            "the line is not valid UTF-8 (is the terminal set to another encoding?); nothing was sent"
        )
    text = line.strip()
    if not text:
        return None
    if text == DETACH:
        return Detach()
    word = text.split(maxsplit=1)[0]
    if text.startswith(ESCAPE):
        if attached is None:
            raise CommandError(f"not attached; nothing was sent (attach a topic first, or {_PUB_USAGE})")
        return Publish(attached, line.lstrip().removeprefix(ESCAPE).rstrip("\r\n"))
    if word.removeprefix("/") in COMMAND_WORDS and (attached is None or word.startswith("/")):
        return _command(text.removeprefix("/"))
    if word.startswith("/"):
        # `// text` sends only to the attached topic: detached, it would be refused in turn.
        escape = "write // and a space before it" if attached is not None else f"use {_PUB_USAGE}"
        raise CommandError(
            f"unknown command {_shown(word)}; nothing was sent (type help; to send a line starting"
            f" with /, {escape})"
        )
    if attached is not None:
        return Publish(attached, line.rstrip("\r\n"))
    raise CommandError(
        f"unknown command {_shown(word)}; nothing was sent (attach a topic to send plain lines; type help)"
    )


def _is_unicode(line: str) -> bool:
    """Whether `line` is text: the terminal decodes bytes that are not UTF-8 (Latin-1 `caf\\xe9`)
    to lone surrogates, which no frame, transcript or screen can carry."""
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(word: str) -> str:
    """`word` as an error message quotes it: escaped like a body, cut off when long."""
    text = escape_text(word)
    return text if len(text) <= 40 else text[:39] + "…"


def _command(text: str) -> Command:
    word, *rest = text.split(maxsplit=1)
    arguments = rest[0] if rest else ""
    if word in _BARE_COMMANDS:
        if arguments:
            raise CommandError(f"{word} takes no arguments")
        return _BARE_COMMANDS[word]()
    if word == "pub":
        parts = arguments.split(maxsplit=1)
        if len(parts) != 2:
            raise CommandError(f"usage: {_PUB_USAGE}")
        return Publish(_topic(parts[0]), parts[1].strip(), by_command=True)
    names = arguments.split()
    if not names:
        raise CommandError(f"usage: {word} <topic>")
    if len(names) > 1:
        raise CommandError(
            f"usage: {word} <topic>, one topic: a topic name has no spaces"
            f" (it must match {TOPIC_PATTERN.pattern}); nothing was sent"
        )
    return _TOPIC_COMMANDS[word](_topic(names[0]))


def _topic(name: str) -> Topic:
    try:
        return Topic(name)
    except InvalidName as error:
        raise CommandError(f"{error}; nothing was sent") from None
