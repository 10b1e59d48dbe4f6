"""parse_line: what a typed line means, attached or detached, and the one-line errors it gives."""

from __future__ import annotations

import pytest

from minimess.app.client_commands import (
    Attach,
    Command,
    CommandError,
    Detach,
    Help,
    ListTopics,
    Publish,
    Quit,
    Reconnect,
    Subscribe,
    Unsubscribe,
    parse_line,
)
from minimess.domain.model import Topic

NEWS = Topic("news")
CHAT = Topic("afrozalm:mala:zorfa")

COMMANDS: list[tuple[str, Command]] = [
    ("sub news", Subscribe(NEWS)),
    ("unsub news", Unsubscribe(NEWS)),
    ("attach afrozalm:mala:zorfa", Attach(CHAT)),
    ("pub news hello there", Publish(NEWS, "hello there", by_command=True)),
    ("topics", ListTopics()),
    ("help", Help()),
    ("quit", Quit()),
    ("exit", Quit()),
    ("reconnect", Reconnect()),
    ("  sub   news  ", Subscribe(NEWS)),
    ("pub  news   two  words  ", Publish(NEWS, "two  words", by_command=True)),
    ("sub\tnews", Subscribe(NEWS)),
    ("pub\tnews\thi there", Publish(NEWS, "hi there", by_command=True)),
]


def _error(line: str, attached: Topic | None = None) -> str:
    """The explanation parse_line gives for `line`, checked to be one line."""
    with pytest.raises(CommandError) as raised:
        parse_line(line, attached)
    message = str(raised.value)
    assert message
    assert "\n" not in message
    assert "\r" not in message
    return message


@pytest.mark.parametrize(("line", "command"), COMMANDS)
def test_a_command_needs_a_slash_only_while_attached(line: str, command: Command) -> None:
    """Detached, `sub news` and `/sub news` are the same command; attached, `sub news` is a message."""
    slashed = line.replace(line.strip(), "/" + line.strip(), 1)
    assert parse_line(line, None) == command
    assert parse_line(slashed, None) == command
    assert parse_line(slashed, CHAT) == command
    assert parse_line(line, CHAT) == Publish(CHAT, line)


@pytest.mark.parametrize(
    "line",
    [
        "help me",
        "quit it",
        "topics are fun",
        "pub crawl tonight?",
        "a/b",
        "x //",
    ],
)
def test_attached_a_line_that_is_no_slash_command_is_a_message(line: str) -> None:
    assert parse_line(line, CHAT) == Publish(CHAT, line)


@pytest.mark.parametrize("attached", [CHAT, None])
@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("/who", "/who"),
        ("/tpoics", "/tpoics"),
        ("  /me waves", "/me"),
        ("/", "/"),
        ("/ sub news", "/"),
        ("//x", "//x"),
        ("/SUB news", "/SUB"),
        ("/\x1b[2J", "/\\x1b[2J"),
    ],
)
def test_a_line_starting_with_a_slash_that_is_no_command_is_refused_attached_or_not(
    line: str, shown: str, attached: Topic | None
) -> None:
    """Most likely a mistyped command: sent to the room it would tell everyone so. The error names
    the escape that sends such a line."""
    escape = "write // and a space before it" if attached else "use pub <topic> <text>"
    assert _error(line, attached) == (
        f"unknown command {shown}; nothing was sent (type help; to send a line starting with /, {escape})"
    )


@pytest.mark.parametrize(
    ("line", "body"),
    [
        ("// /etc/hosts is readable", "/etc/hosts is readable"),
        ("// /who", "/who"),
        ("// //", "//"),
        ("  //  two spaces kept  \r\n", " two spaces kept  "),
        ("// plain", "plain"),
    ],
)
def test_attached_double_slash_and_a_space_send_the_rest_of_the_line_as_it_is(line: str, body: str) -> None:
    assert parse_line(line, CHAT) == Publish(CHAT, body)


def test_detached_the_escape_is_refused_since_there_is_no_topic_to_send_to() -> None:
    assert _error("// /etc/hosts", None) == (
        "not attached; nothing was sent (attach a topic first, or pub <topic> <text>)"
    )


def test_attached_a_message_keeps_its_spaces_but_not_the_line_end() -> None:
    assert parse_line("  indented  \r\n", CHAT) == Publish(CHAT, "  indented  ")


@pytest.mark.parametrize("attached", [None, CHAT])
@pytest.mark.parametrize(
    ("line", "command"),
    [("//", Detach()), ("  //  ", Detach()), ("//\n", Detach()), ("", None), (" \t ", None), ("\r\n", None)],
)
def test_double_slash_detaches_and_a_blank_line_means_nothing_attached_or_not(
    line: str, command: Command | None, attached: Topic | None
) -> None:
    assert parse_line(line, attached) == command


@pytest.mark.parametrize("line", ["hello", "what's up all", "subscribe news", "SUB news"])
def test_detached_a_line_that_is_no_command_says_to_attach_and_nothing_was_sent(line: str) -> None:
    message = _error(line)
    assert "nothing was sent" in message
    assert "attach" in message


@pytest.mark.parametrize(
    ("line", "attached", "usage"),
    [
        ("pub", None, "usage: pub <topic> <text>"),
        ("pub news    ", None, "usage: pub <topic> <text>"),
        ("/pub news", CHAT, "usage: pub <topic> <text>"),
        ("sub", None, "usage: sub <topic>"),
        ("attach", None, "usage: attach <topic>"),
        ("topics now", None, "topics takes no arguments"),
        ("help now", None, "help takes no arguments"),
        ("/quit now", CHAT, "quit takes no arguments"),
    ],
)
def test_a_command_with_the_wrong_arguments_gives_its_usage(
    line: str, attached: Topic | None, usage: str
) -> None:
    assert _error(line, attached) == usage


@pytest.mark.parametrize(
    ("line", "attached"),
    [("unsub two topics", None), ("sub bad topic!", None), ("/attach two words", CHAT)],
)
def test_several_words_for_one_topic_say_a_topic_has_no_spaces_and_what_it_may_hold(
    line: str, attached: Topic | None
) -> None:
    word = line.removeprefix("/").split()[0]
    assert _error(line, attached) == (
        f"usage: {word} <topic>, one topic: a topic name has no spaces"
        " (it must match [A-Za-z0-9_.:-]{1,128}); nothing was sent"
    )


@pytest.mark.parametrize(
    ("line", "attached"),
    [
        ("sub bad/topic", None),
        ("unsub bad/topic", None),
        ("attach héllo", None),
        ("pub bad/topic hello", None),
        ("/sub bad/topic", CHAT),
    ],
)
def test_a_bad_topic_name_is_explained_and_nothing_is_sent(line: str, attached: Topic | None) -> None:
    message = _error(line, attached)
    assert "invalid topic" in message
    assert "nothing was sent" in message


@pytest.mark.parametrize("line", ["sub\tnews x", "help\tme please", "attach\u00a0news now"])
def test_a_bad_command_split_by_other_blanks_is_explained_never_a_crash(line: str) -> None:
    _error(line)


@pytest.mark.parametrize("attached", [None, CHAT])
@pytest.mark.parametrize("line", ["caf\udce9 latin1", "pub news caf\udce9", "sub caf\udce9", "// caf\udce9"])
def test_a_line_that_is_not_valid_utf8_is_refused_attached_or_not(line: str, attached: Topic | None) -> None:
    """A terminal in another encoding: its bytes arrive as lone surrogates, which no frame can carry."""
    assert _error(line, attached) == (
        "the line is not valid UTF-8 (is the terminal set to another encoding?); nothing was sent"
    )
