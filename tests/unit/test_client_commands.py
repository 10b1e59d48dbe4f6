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
    ("attach news", Attach(NEWS)),
    ("pub news hello there", Publish(NEWS, "hello there")),
    ("topics", ListTopics()),
    ("help", Help()),
    ("quit", Quit()),
    ("sub afrozalm:mala:zorfa", Subscribe(CHAT)),
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
def test_detached_a_command_works_without_a_slash(line: str, command: Command) -> None:
    """Detached, `sub news`, `pub news hi`, `quit` ... are commands as typed."""
    assert parse_line(line, None) == command


@pytest.mark.parametrize(("line", "command"), COMMANDS)
def test_detached_a_command_works_with_a_slash(line: str, command: Command) -> None:
    """Detached, `/sub news` means the same as `sub news`."""
    assert parse_line("/" + line, None) == command


@pytest.mark.parametrize(("line", "command"), COMMANDS)
def test_attached_a_command_needs_its_slash(line: str, command: Command) -> None:
    """Attached, `/sub news`, `/pub news hi`, `/quit` ... are commands."""
    assert parse_line("/" + line, CHAT) == command


@pytest.mark.parametrize(("line", "_command"), COMMANDS)
def test_attached_a_command_without_a_slash_is_a_message(line: str, _command: Command) -> None:
    """Attached, `sub news` or `quit` is sent as it is to the attached topic."""
    assert parse_line(line, CHAT) == Publish(CHAT, line)


@pytest.mark.parametrize("line", ["help me", "quit", "quit it", "topics are fun", "pub crawl tonight?"])
def test_attached_command_words_in_plain_text_are_messages(line: str) -> None:
    """Attached, you can write "help me" or "quit" to your friends."""
    assert parse_line(line, CHAT) == Publish(CHAT, line)


def test_attached_slash_quit_is_quit() -> None:
    """Attached, `/quit` leaves, while `quit` is a message."""
    assert parse_line("/quit", CHAT) == Quit()
    assert parse_line("quit", CHAT) == Publish(CHAT, "quit")


@pytest.mark.parametrize("line", ["/me waves", "/", "/nope", "/ sub news", "//x"])
def test_attached_a_slash_without_a_command_is_a_message(line: str) -> None:
    """Attached, a line starting with `/` but no command word is sent as it is."""
    assert parse_line(line, CHAT) == Publish(CHAT, line)


def test_attached_a_message_keeps_its_spaces_but_not_the_line_end() -> None:
    """Attached, the text is sent as typed, without a trailing newline."""
    assert parse_line("  indented  \r\n", CHAT) == Publish(CHAT, "  indented  ")


@pytest.mark.parametrize("attached", [None, CHAT])
@pytest.mark.parametrize("line", ["//", "  //  ", "//\n"])
def test_double_slash_detaches(line: str, attached: Topic | None) -> None:
    """`//` is Detach, attached or not (the client says "not attached" when not)."""
    assert parse_line(line, attached) == Detach()


@pytest.mark.parametrize("attached", [None, CHAT])
@pytest.mark.parametrize("line", ["", " ", "\t", "   \t  ", "\n", "\r\n"])
def test_a_blank_line_means_nothing(line: str, attached: Topic | None) -> None:
    """A blank line, attached or not, is None: nothing to do, nothing sent."""
    assert parse_line(line, attached) is None


def test_surrounding_blanks_and_extra_spaces_are_ignored_in_commands() -> None:
    """`  sub   news  ` is `sub news`; the body of pub loses only its outer blanks."""
    assert parse_line("  sub   news  ", None) == Subscribe(NEWS)
    assert parse_line("pub  news   two  words  ", None) == Publish(NEWS, "two  words")
    assert parse_line("  /pub news hi", CHAT) == Publish(NEWS, "hi")


def test_exit_is_quit() -> None:
    """`exit` leaves too."""
    assert parse_line("exit", None) == Quit()


@pytest.mark.parametrize("line", ["hello", "what's up all", "subscribe news", "SUB news", "/hello"])
def test_detached_a_plain_line_is_an_error_and_says_to_attach(line: str) -> None:
    """Detached, a line that is no command gets a one-line explanation and is not sent."""
    message = _error(line)
    assert "nothing was sent" in message
    assert "attach" in message


@pytest.mark.parametrize("line", ["pub", "pub news", "pub news    ", "/pub news", "pub  "])
def test_pub_without_topic_or_text_gives_its_usage(line: str) -> None:
    """`pub` needs a topic and some text."""
    assert _error(line) == "usage: pub <topic> <text>"


def test_attached_slash_pub_without_text_gives_its_usage() -> None:
    """Attached, `/pub news` is the pub command and gets its usage too."""
    assert _error("/pub news", CHAT) == "usage: pub <topic> <text>"


@pytest.mark.parametrize("word", ["sub", "unsub", "attach"])
@pytest.mark.parametrize("rest", ["", " two topics"])
def test_topic_commands_need_exactly_one_topic(word: str, rest: str) -> None:
    """`sub`, `unsub` and `attach` take one topic, no more, no less."""
    assert _error(f"{word}{rest}") == f"usage: {word} <topic>"


@pytest.mark.parametrize("word", ["topics", "help", "quit"])
def test_bare_commands_take_no_arguments(word: str) -> None:
    """`topics`, `help` and `quit` with an argument are errors, not silently accepted."""
    assert _error(f"{word} now") == f"{word} takes no arguments"


@pytest.mark.parametrize(
    "line",
    [
        "sub bad/topic",
        "unsub bad/topic",
        "attach héllo",
        "pub bad/topic hello",
        "sub " + "x" * 129,
    ],
)
def test_a_bad_topic_name_is_explained_and_nothing_is_sent(line: str) -> None:
    """A topic breaking the naming rules gets a one-line explanation naming the rule."""
    message = _error(line)
    assert "invalid topic" in message
    assert "nothing was sent" in message


def test_attached_a_bad_topic_in_a_slash_command_is_an_error() -> None:
    """Attached, `/sub bad/topic` is still refused rather than sent as a message."""
    assert "invalid topic" in _error("/sub bad/topic", CHAT)


@pytest.mark.parametrize(
    ("line", "attached", "command"),
    [
        ("sub\tnews", None, Subscribe(NEWS)),
        ("pub\tnews\thi there", None, Publish(NEWS, "hi there")),
        ("/unsub\tnews", CHAT, Unsubscribe(NEWS)),
    ],
)
def test_a_tab_separates_words_like_a_space(line: str, attached: Topic | None, command: Command) -> None:
    """A pasted command with tabs between its words means what it would with spaces."""
    assert parse_line(line, attached) == command


@pytest.mark.parametrize("line", ["sub\tnews x", "help\tme please", "attach\u00a0news now"])
def test_a_command_separated_by_other_blanks_is_a_command_error(line: str) -> None:
    """A bad command whose words are split by a tab or another non-space blank is explained, never a crash."""
    _error(line)
