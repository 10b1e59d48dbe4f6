"""What a line typed into the terminal client means: a command, a message, or a mistake."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from minimess.domain.errors import InvalidName
from minimess.domain.model import Topic

DETACH = "//"

HELP = """\
commands:
  sub <topic>          subscribe to a topic
  unsub <topic>        unsubscribe from a topic
  attach <topic>       subscribe if needed, and send what you type to the topic
  //                   detach: lines are commands again
  pub <topic> <text>   send text to a topic, attached or not
  topics               list your topics
  reconnect (or Enter) while disconnected, try to connect now
  help                 this list
  quit (or Ctrl-D)     leave
while attached, start a command with / (/pub, /unsub, /quit, ...); any other line is a message"""


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


def parse_line(line: str, attached: Topic | None) -> Command | None:
    """The command `line` stands for, given the attached topic; None for a blank line.

    Attached, a line is a message to the attached topic unless it is `//` or a command written
    with a leading `/`. Detached, commands need no `/`, and anything else is a CommandError.
    """
    text = line.strip()
    if not text:
        return None
    if text == DETACH:
        return Detach()
    word = text.split(maxsplit=1)[0]
    if attached is not None:
        if word.startswith("/") and word[1:] in COMMAND_WORDS:
            return _command(text[1:])
        return Publish(attached, line.rstrip("\r\n"))
    if word.removeprefix("/") in COMMAND_WORDS:
        return _command(text.removeprefix("/"))
    raise CommandError(
        f"unknown command {word!r}; nothing was sent (attach a topic to send plain lines; type help)"
    )


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
            raise CommandError("usage: pub <topic> <text>")
        return Publish(_topic(parts[0]), parts[1].strip())
    names = arguments.split()
    if len(names) != 1:
        raise CommandError(f"usage: {word} <topic>")
    return _TOPIC_COMMANDS[word](_topic(names[0]))


def _topic(name: str) -> Topic:
    try:
        return Topic(name)
    except InvalidName as error:
        raise CommandError(f"{error}; nothing was sent") from None
