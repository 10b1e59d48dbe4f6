"""ChatClient: typed lines to a fake link, link events to a recording display and a real transcript."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from minimess.app.chat_client import ChatClient, LinkEvents
from minimess.app.client_commands import HELP
from minimess.app.transcript import Transcript, transcript_line
from minimess.domain.model import Message, Topic, Uid

NEWS = Topic("news")
SPORT = Topic("sport")
CHAT = Topic("afrozalm:mala:zorfa")


class FakeLink:
    """A Link that keeps the user's topics and queued publishes, connected or not as the test says."""

    def __init__(self, topics: tuple[Topic, ...] = (), connected: bool = True, queue_size: int = 100) -> None:
        self._topics: dict[Topic, None] = dict.fromkeys(topics)
        self.connected = connected
        self.queue_size = queue_size
        # Publishes accepted, in order; a test empties it to "send" them.
        self.queued: list[tuple[Topic, str]] = []
        self.subscribes: list[Topic] = []
        self.unsubscribes: list[Topic] = []
        self.closed = False

    @property
    def topics(self) -> tuple[Topic, ...]:
        return tuple(self._topics)

    @property
    def is_connected(self) -> bool:
        return self.connected

    def subscribe(self, topic: Topic) -> None:
        self.subscribes.append(topic)
        self._topics[topic] = None

    def unsubscribe(self, topic: Topic) -> None:
        self.unsubscribes.append(topic)
        self._topics.pop(topic, None)

    def publish(self, topic: Topic, body: str) -> bool:
        if len(self.queued) >= self.queue_size:
            return False
        self.queued.append((topic, body))
        return True

    async def run(self, events: LinkEvents) -> None:
        """Never called by ChatClient itself."""

    def close(self) -> None:
        self.closed = True


class RecordingDisplay:
    """A Display that keeps every line it is given, by kind and all together in order."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.notices: list[str] = []
        self.ticks: list[str] = []

    def message(self, line: str) -> None:
        self.messages.append(line)

    def notice(self, line: str) -> None:
        self.notices.append(line)

    def tick(self, line: str) -> None:
        self.ticks.append(line)

    def take_notices(self) -> list[str]:
        """The notices since the last call."""
        notices, self.notices = self.notices, []
        return notices


@pytest.fixture
def link() -> FakeLink:
    return FakeLink()


@pytest.fixture
def display() -> RecordingDisplay:
    return RecordingDisplay()


@pytest.fixture
def transcript(tmp_path: Path) -> Iterator[Transcript]:
    transcript = Transcript(tmp_path / "afrozalm.mess")
    yield transcript
    transcript.close()


@pytest.fixture
def client(link: FakeLink, transcript: Transcript, display: RecordingDisplay) -> ChatClient:
    return ChatClient(Uid("afrozalm"), link, transcript, display)


def _message(body: str, topic: Topic = CHAT, sender: str = "mala") -> Message:
    return Message(
        id="m-1",
        topic=topic,
        sender=Uid(sender),
        body=body,
        timestamp=datetime(2026, 11, 28, 10, 30, 14, tzinfo=UTC),
    )


def test_a_new_session_is_detached_with_the_plain_prompt(client: ChatClient) -> None:
    """Before attach, the prompt is `> ` and nothing is attached."""
    assert client.attached is None
    assert client.prompt == "> "


def test_attach_subscribes_when_needed_and_changes_the_prompt(
    client: ChatClient, link: FakeLink, display: RecordingDisplay
) -> None:
    """`attach t` on a topic not yet subscribed subscribes to it, and the prompt names it."""
    assert client.handle_line("attach afrozalm:mala:zorfa")
    assert link.subscribes == [CHAT]
    assert client.attached == CHAT
    assert client.prompt == "[afrozalm:mala:zorfa]> "
    assert display.take_notices() == [
        "* attached to afrozalm:mala:zorfa: what you type goes there; // detaches"
    ]


def test_attach_to_a_subscribed_topic_does_not_subscribe_again(client: ChatClient, link: FakeLink) -> None:
    """A topic already subscribed is only attached."""
    client.handle_line("sub news")
    client.handle_line("attach news")
    assert link.subscribes == [NEWS]
    assert client.attached == NEWS


def test_attach_while_disconnected_says_the_topic_is_subscribed_later(
    link: FakeLink, client: ChatClient, display: RecordingDisplay
) -> None:
    """Offline, attach still attaches, and says the subscription waits for the connection."""
    link.connected = False
    client.handle_line("attach news")
    assert client.attached == NEWS
    assert display.take_notices() == [
        "* news will be subscribed once the connection is back",
        "* attached to news: what you type goes there; // detaches",
    ]


def test_attached_lines_are_published_to_the_attached_topic(client: ChatClient, link: FakeLink) -> None:
    """What you type while attached goes to the attached topic, as typed; "quit" too."""
    client.handle_line("attach afrozalm:mala:zorfa")
    assert client.handle_line("What's up all")
    assert client.handle_line("quit")
    assert link.queued == [(CHAT, "What's up all"), (CHAT, "quit")]


def test_double_slash_detaches_and_restores_the_prompt(
    client: ChatClient, link: FakeLink, display: RecordingDisplay
) -> None:
    """`//` detaches: the prompt is `> ` again and plain lines are commands again."""
    client.handle_line("attach news")
    display.take_notices()
    client.handle_line("//")
    assert client.attached is None
    assert client.prompt == "> "
    assert display.take_notices() == ["* detached from news"]
    client.handle_line("hello")
    assert link.queued == []
    assert display.take_notices()[0].startswith("! unknown command 'hello'")
    assert link.topics == (NEWS,)


def test_double_slash_when_detached_says_so(client: ChatClient, display: RecordingDisplay) -> None:
    """`//` when not attached changes nothing and says "not attached"."""
    client.handle_line("//")
    assert display.notices == ["* not attached"]


def test_unsub_of_the_attached_topic_detaches(
    client: ChatClient, link: FakeLink, display: RecordingDisplay
) -> None:
    """`/unsub t` while attached to t unsubscribes and detaches."""
    client.handle_line("attach news")
    client.handle_line("/unsub news")
    assert link.unsubscribes == [NEWS]
    assert client.attached is None
    assert client.prompt == "> "
    assert link.topics == ()


def test_unsub_of_another_topic_stays_attached(client: ChatClient, link: FakeLink) -> None:
    """Unsubscribing from a topic other than the attached one keeps the attachment."""
    client.handle_line("sub sport")
    client.handle_line("attach news")
    client.handle_line("/unsub sport")
    assert client.attached == NEWS
    assert link.topics == (NEWS,)


def test_unsub_while_disconnected_says_so_at_once(
    link: FakeLink, client: ChatClient, display: RecordingDisplay
) -> None:
    """Offline, no server will confirm the unsubscribe, so the client does."""
    link.connected = False
    client.handle_line("unsub news")
    assert display.notices == ["* unsubscribed from news"]


def test_sub_while_connected_waits_for_the_server_to_confirm(
    client: ChatClient, link: FakeLink, display: RecordingDisplay
) -> None:
    """Online, `sub` says nothing itself; the server's `subscribed` does."""
    client.handle_line("sub news")
    assert link.subscribes == [NEWS]
    assert display.notices == []
    client.subscribed(NEWS)
    client.unsubscribed(NEWS)
    assert display.notices == ["* subscribed to news", "* unsubscribed from news"]


def test_publish_while_connected_says_nothing(
    client: ChatClient, link: FakeLink, display: RecordingDisplay
) -> None:
    """`pub t text` online is queued for sending, without any notice."""
    assert client.handle_line("pub news hello")
    assert link.queued == [(NEWS, "hello")]
    assert display.notices == []


def test_publish_while_disconnected_says_it_is_queued(
    link: FakeLink, client: ChatClient, display: RecordingDisplay
) -> None:
    """Offline, a line is kept and the user told it goes out once the connection is back."""
    link.connected = False
    client.handle_line("pub news hello")
    assert link.queued == [(NEWS, "hello")]
    assert display.notices == ["* queued: it will be sent once the connection is back"]


def test_a_full_queue_refuses_the_line_with_a_problem_notice(
    client: ChatClient, link: FakeLink, display: RecordingDisplay
) -> None:
    """Past the queue size, a line is refused with a `!` notice quoting it, and not queued."""
    link.connected = False
    link.queue_size = 1
    client.handle_line("pub news one")
    display.take_notices()
    assert client.handle_line("pub news two")
    assert link.queued == [(NEWS, "one")]
    assert display.take_notices() == ['! message to news failed: too many lines waiting to be sent: "two"']


def test_received_appends_the_transcript_line_and_shows_it(
    client: ChatClient, transcript: Transcript, display: RecordingDisplay
) -> None:
    """A received message becomes one transcript line, in the file and on the display."""
    first, second = _message("What's up all"), _message("two\nlines", topic=NEWS, sender="zorfa")
    client.received(first)
    client.received(second)
    lines = [transcript_line(first), transcript_line(second)]
    assert display.messages == lines
    assert transcript.path.read_text(encoding="utf-8") == "".join(f"{line}\n" for line in lines)
    assert lines[1].endswith("[r/news]> (@zorfa): two\\nlines")
    assert display.notices == []


def test_publish_failed_is_a_problem_line_with_an_escaped_excerpt(
    client: ChatClient, display: RecordingDisplay
) -> None:
    """A failed publish says topic, reason and the text, escaped onto one line and shortened."""
    client.publish_failed(NEWS, "hi\tthere", "no ack within 10 s")
    client.publish_failed(NEWS, "x" * 100, "rate_limited: slow down")
    first, second = display.notices
    assert first == '! message to news failed: no ack within 10 s: "hi\\tthere"'
    assert second == '! message to news failed: rate_limited: slow down: "' + "x" * 59 + '…"'


def test_refused_is_a_problem_line(client: ChatClient, display: RecordingDisplay) -> None:
    """A refusal from the server is shown as `! what: reason`."""
    client.refused("the server says", "bad_frame: nope")
    assert display.notices == ["! the server says: bad_frame: nope"]


def test_a_refused_subscription_of_the_attached_topic_detaches(
    client: ChatClient, link: FakeLink, display: RecordingDisplay
) -> None:
    """When the link drops the attached topic after a refusal, the client detaches."""
    client.handle_line("attach news")
    link.unsubscribe(NEWS)  # what the link does when the server refuses the sub
    client.refused("cannot subscribe to news", "too_many_topics: at most 1")
    assert client.attached is None
    assert display.notices[-1] == "! cannot subscribe to news: too_many_topics: at most 1"


def test_a_refusal_about_something_else_keeps_the_attachment(client: ChatClient) -> None:
    """A refusal that leaves the attached topic subscribed changes nothing."""
    client.handle_line("attach news")
    client.refused("the server says", "bad_frame: nope")
    assert client.attached == NEWS


def test_connected_names_the_node_and_uid(client: ChatClient, display: RecordingDisplay) -> None:
    """`* connected to <node> as <uid>`, without a topic list when there are none."""
    client.connected("laptop:8080", ())
    assert display.notices == ["* connected to laptop:8080 as afrozalm"]


def test_connected_after_a_disconnect_lists_the_resubscribed_topics(
    client: ChatClient, display: RecordingDisplay
) -> None:
    """After a reconnect the notice says which topics are subscribed again."""
    client.connected("laptop:8080", (NEWS,))
    client.disconnected("connection lost", 0.43)
    client.connected("laptop:8080", (NEWS, SPORT))
    assert display.notices == [
        "* connected to laptop:8080 as afrozalm; subscribed to news",
        "* disconnected (connection lost); retrying in 0.4 s",
        "* connected to laptop:8080 as afrozalm; resubscribed to news, sport",
    ]


def test_the_attachment_survives_a_reconnect(client: ChatClient, link: FakeLink) -> None:
    """Disconnecting and reconnecting leaves the client attached where it was."""
    client.handle_line("attach news")
    client.disconnected("connection lost", 1)
    client.connected("laptop:8080", (NEWS,))
    assert client.attached == NEWS
    client.handle_line("still here")
    assert link.queued == [(NEWS, "still here")]


def test_disconnected_says_not_connected_until_a_connection_was_made(
    client: ChatClient, display: RecordingDisplay
) -> None:
    """Failed attempts before any connection are "not connected", with the delay to one decimal."""
    client.disconnected("cannot reach ws://127.0.0.1:8080: connection refused", 0.25)
    client.disconnected("cannot reach ws://127.0.0.1:8080: connection refused", 0.9)
    assert display.notices == [
        "* not connected (cannot reach ws://127.0.0.1:8080: connection refused); retrying in 0.2 s",
        "* not connected (cannot reach ws://127.0.0.1:8080: connection refused); retrying in 0.9 s",
    ]


def test_disconnected_wording_after_a_live_connection(client: ChatClient, display: RecordingDisplay) -> None:
    """The first drop of a live connection says "disconnected"; the failed retries after it do not."""
    client.connected("laptop:8080", ())
    client.disconnected("the server is going away", 1.96)
    client.disconnected("cannot reach ws://127.0.0.1:8080: connection refused", 3)
    assert display.notices[1:] == [
        "* disconnected (the server is going away); retrying in 2.0 s",
        "* not connected (cannot reach ws://127.0.0.1:8080: connection refused); retrying in 3.0 s",
    ]


def test_ticks_go_to_the_tick_line(client: ChatClient, display: RecordingDisplay) -> None:
    """A `time` frame is shown through Display.tick, not as a notice."""
    client.ticked("2026-11-28T03:55:13.123Z")
    assert display.ticks == ["* time 2026-11-28T03:55:13.123Z"]
    assert display.notices == []


def test_topics_lists_the_topics_and_the_attached_one(client: ChatClient, display: RecordingDisplay) -> None:
    """`topics` lists every topic of the link, and which one is attached."""
    client.handle_line("topics")
    assert display.take_notices() == ["* topics: none"]
    client.handle_line("sub news")
    client.handle_line("attach sport")
    display.take_notices()
    client.handle_line("/topics")
    assert display.notices == ["* topics: news, sport; attached to sport"]


def test_help_shows_the_command_list(client: ChatClient, display: RecordingDisplay) -> None:
    """`help` shows the help text as one notice."""
    assert client.handle_line("help")
    assert display.notices == [HELP]


def test_a_bad_line_is_a_problem_notice_and_sends_nothing(
    client: ChatClient, link: FakeLink, display: RecordingDisplay
) -> None:
    """A command error is shown with `!` and nothing reaches the link."""
    assert client.handle_line("sub bad/topic")
    assert client.handle_line("hello")
    assert link.subscribes == []
    assert link.queued == []
    assert [notice[0] for notice in display.notices] == ["!", "!"]


def test_quit_ends_the_session_and_blank_lines_do_nothing(
    client: ChatClient, link: FakeLink, display: RecordingDisplay
) -> None:
    """handle_line is False for quit (and /quit while attached), True otherwise."""
    assert client.handle_line("   ")
    assert display.notices == []
    assert not client.handle_line("quit")
    client.handle_line("attach news")
    assert client.handle_line("quit")
    assert not client.handle_line("/quit")
    assert link.queued == [(NEWS, "quit")]
