"""ChatClient: typed lines to a fake link, link events to a recording display and a real transcript."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from minimess.app.chat_client import ChatClient, LinkEvents
from minimess.app.client_commands import HELP
from minimess.app.transcript import Transcript, gap_line, transcript_line
from minimess.domain.model import Message, Topic, Uid

NEWS = Topic("news")
SPORT = Topic("sport")
QUEUED_NOTICE = "* queued: it will be sent once connected"


class FakeLink:
    """A Link that keeps the user's topics and what it was asked, connected or not as the test says."""

    def __init__(self) -> None:
        self._topics: dict[Topic, None] = {}
        self.connected = True
        self.queue_size = 100
        # Publishes not acknowledged yet, and those of them never sent, as the test says.
        self.pending = 0
        self.unsent = 0
        # What oversize() answers for every message; None: any length goes.
        self.too_long: str | None = None
        # ("subscribe", topic), ("unsubscribe", topic), ("publish", topic, body) and ("retry_now",),
        # in order.
        self.calls: list[tuple[object, ...]] = []

    @property
    def topics(self) -> tuple[Topic, ...]:
        return tuple(self._topics)

    @property
    def is_connected(self) -> bool:
        return self.connected

    def subscribe(self, topic: Topic) -> None:
        self.calls.append(("subscribe", topic))
        self._topics[topic] = None

    def unsubscribe(self, topic: Topic) -> None:
        self.calls.append(("unsubscribe", topic))
        self._topics.pop(topic, None)

    def publish(self, topic: Topic, body: str) -> bool:
        if len(self.published) >= self.queue_size:
            return False
        self.calls.append(("publish", topic, body))
        return True

    def oversize(self, topic: Topic, body: str) -> str | None:
        return self.too_long

    def retry_now(self) -> None:
        self.calls.append(("retry_now",))

    @property
    def published(self) -> list[tuple[object, ...]]:
        return [call[1:] for call in self.calls if call[0] == "publish"]

    async def run(self, events: LinkEvents) -> None:
        raise NotImplementedError("ChatClient never runs the link")

    def close(self) -> None:
        raise NotImplementedError("ChatClient never closes the link")


class RecordingDisplay:
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.notices: list[str] = []
        self.ticks: list[str] = []
        self.statuses: list[str] = []

    def message(self, line: str) -> None:
        self.messages.append(line)

    def notice(self, line: str) -> None:
        self.notices.append(line)

    def tick(self, line: str) -> None:
        self.ticks.append(line)

    def status(self, line: str) -> None:
        self.statuses.append(line)

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


NOW = datetime(2026, 11, 29, 0, 30, tzinfo=UTC)


class Clock:
    """A monotonic clock that moves only when a test says."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(link: FakeLink, transcript: Transcript, display: RecordingDisplay, clock: Clock) -> ChatClient:
    return ChatClient(Uid("afrozalm"), link, transcript, display, now=lambda: NOW, clock=clock)


@pytest.mark.parametrize(
    ("connected", "line", "call", "notices"),
    [
        (True, "sub news", ("subscribe", NEWS), []),
        (False, "sub news", ("subscribe", NEWS), ["* news will be subscribed once connected"]),
        (True, "unsub news", ("unsubscribe", NEWS), []),
        (False, "unsub news", ("unsubscribe", NEWS), ["* unsubscribed from news"]),
        (True, "pub news hello", ("publish", NEWS, "hello"), []),
        (False, "pub news hello", ("publish", NEWS, "hello"), [QUEUED_NOTICE]),
    ],
)
def test_a_command_goes_to_the_link_and_only_offline_does_the_client_say_so_itself(
    client: ChatClient,
    link: FakeLink,
    display: RecordingDisplay,
    connected: bool,
    line: str,
    call: tuple[object, ...],
    notices: list[str],
) -> None:
    """Online, the server's answer (`subscribed`, `unsubscribed`) is what the user sees."""
    link.subscribe(NEWS)
    link.calls.clear()
    link.connected = connected
    assert client.handle_line(line)
    assert link.calls == [call]
    assert display.notices == notices


def test_attach_subscribes_if_needed_and_what_is_typed_then_goes_to_the_topic(
    client: ChatClient, link: FakeLink, display: RecordingDisplay
) -> None:
    """Until `//` detaches: then the prompt is plain again, and so are commands."""
    assert client.prompt == "> "
    client.handle_line("sub sport")
    client.handle_line("attach news")
    client.handle_line("/attach sport")
    assert link.calls == [("subscribe", SPORT), ("subscribe", NEWS)]
    assert client.prompt == "[sport]> "
    assert display.take_notices()[-1] == "* attached to sport: what you type goes there; // detaches"
    assert client.handle_line("What's up all")
    assert client.handle_line("quit")
    assert link.published == [(SPORT, "What's up all"), (SPORT, "quit")]
    client.handle_line("//")
    assert (client.attached, client.prompt) == (None, "> ")
    client.handle_line("//")
    assert display.take_notices() == ["* detached from sport", "* not attached"]
    assert link.topics == (SPORT, NEWS)
    assert not client.handle_line("quit")


def test_attach_while_disconnected_attaches_and_says_the_subscription_waits(
    client: ChatClient, link: FakeLink, display: RecordingDisplay
) -> None:
    link.connected = False
    client.handle_line("attach news")
    assert client.attached == NEWS
    assert display.notices == [
        "* news will be subscribed once connected",
        "* attached to news: what you type goes there; // detaches",
    ]


@pytest.mark.parametrize(("topic", "attached"), [("news", None), ("sport", NEWS)])
def test_unsub_detaches_only_from_the_topic_it_leaves(
    client: ChatClient, topic: str, attached: Topic | None
) -> None:
    client.handle_line("sub sport")
    client.handle_line("attach news")
    client.handle_line(f"/unsub {topic}")
    assert client.attached == attached


def test_a_full_queue_refuses_the_line_with_a_problem_notice_quoting_it(
    client: ChatClient, link: FakeLink, display: RecordingDisplay
) -> None:
    link.queue_size = 0
    assert client.handle_line("pub news two")
    assert link.calls == []
    assert display.notices == ['! message to news failed: too many lines waiting to be sent: "two"']


def test_a_received_message_becomes_one_line_in_the_transcript_and_on_the_display(
    client: ChatClient, transcript: Transcript, display: RecordingDisplay
) -> None:
    messages = [
        Message(
            id=f"m-{n}",
            topic=NEWS,
            sender=Uid("mala"),
            body=body,
            timestamp=datetime(2026, 11, 28, tzinfo=UTC),
        )
        for n, body in enumerate(["What's up all", "two\nlines"])
    ]
    for message in messages:
        client.received(message)
    lines = [transcript_line(message) for message in messages]
    assert display.messages == lines
    assert transcript.path.read_text(encoding="utf-8") == "".join(f"{line}\n" for line in lines)
    assert display.notices == []


def test_a_gap_is_a_line_in_the_transcript_among_the_messages_and_a_notice_naming_the_topic(
    client: ChatClient, transcript: Transcript, display: RecordingDisplay
) -> None:
    """So that a `tail -f` reader sees it where it happened; the display gets no message line for it."""
    message = Message(
        id="m-1", topic=NEWS, sender=Uid("mala"), body="before", timestamp=datetime(2026, 11, 28, tzinfo=UTC)
    )
    client.received(message)
    client.missed(NEWS)
    assert (
        transcript.path.read_text(encoding="utf-8") == f"{transcript_line(message)}\n{gap_line(NEWS, NOW)}\n"
    )
    assert display.messages == [transcript_line(message)]
    assert display.notices == ["* may have missed messages on news"]


def test_a_failed_publish_names_topic_and_reason_and_quotes_an_escaped_excerpt(
    client: ChatClient, display: RecordingDisplay
) -> None:
    client.publish_failed(NEWS, "hi\tthere", "no ack within 10 s")
    client.publish_failed(NEWS, "x" * 100, "rate_limited: slow down")
    assert display.notices == [
        '! message to news failed: no ack within 10 s: "hi\\tthere"',
        '! message to news failed: rate_limited: slow down: "' + "x" * 59 + '…"',
    ]


@pytest.mark.parametrize(("dropped", "attached"), [(True, None), (False, NEWS)])
def test_a_refusal_detaches_only_when_the_link_dropped_the_attached_topic(
    client: ChatClient, link: FakeLink, display: RecordingDisplay, dropped: bool, attached: Topic | None
) -> None:
    client.handle_line("attach news")
    if dropped:
        link.unsubscribe(NEWS)  # what the link does when the server refuses the sub
    client.refused("cannot subscribe to news", "too_many_topics: at most 1")
    assert client.attached == attached
    assert display.notices[-1] == "! cannot subscribe to news: too_many_topics: at most 1"


def test_connection_notices_tell_a_first_connection_from_a_reconnect_and_a_drop_from_a_failed_retry(
    client: ChatClient, display: RecordingDisplay
) -> None:
    """The retry delay is shown to a tenth of a second; a failed retry is no notice of its own."""
    refused = "cannot reach ws://127.0.0.1:8080: connection refused"
    client.disconnected(refused, 0.25)
    client.connected("laptop:8080", (NEWS,))
    client.disconnected("the server is going away", 1.96)
    client.disconnected(refused, 3)
    client.connected("laptop:8080", (NEWS, SPORT))
    client.disconnected("connection lost", 0.43)
    client.connected("laptop:8080", ())
    assert display.notices == [
        f"* not connected ({refused}); retrying in 0.2 s",
        "* connected to laptop:8080 as afrozalm; subscribed to news",
        "* disconnected (the server is going away); retrying in 2.0 s",
        "* connected to laptop:8080 as afrozalm; resubscribed to news, sport",
        "* disconnected (connection lost); retrying in 0.4 s",
        "* connected to laptop:8080 as afrozalm",
    ]


def test_the_attachment_survives_a_reconnect(client: ChatClient, link: FakeLink) -> None:
    client.handle_line("attach news")
    client.disconnected("connection lost", 1)
    client.connected("laptop:8080", (NEWS,))
    client.handle_line("still here")
    assert link.published == [(NEWS, "still here")]


def test_server_confirmations_refusals_and_ticks_are_shown(
    client: ChatClient, display: RecordingDisplay
) -> None:
    """Ticks on the tick line, not as notices."""
    client.subscribed(NEWS)
    client.unsubscribed(NEWS)
    client.refused("the server says", "bad_frame: nope")
    client.ticked("2026-11-28T03:55:13.123Z")
    assert display.notices == [
        "* subscribed to news",
        "* unsubscribed from news",
        "! the server says: bad_frame: nope",
    ]
    assert display.ticks == ["* time 2026-11-28T03:55:13.123Z"]


def test_topics_lists_the_topics_and_the_attached_one(client: ChatClient, display: RecordingDisplay) -> None:
    client.handle_line("topics")
    assert display.take_notices() == ["* topics: none"]
    client.handle_line("sub news")
    client.handle_line("attach sport")
    display.take_notices()
    client.handle_line("/topics")
    assert display.notices == ["* topics: news, sport; attached to sport"]


def test_help_blank_lines_and_bad_lines_send_nothing(
    client: ChatClient, link: FakeLink, display: RecordingDisplay
) -> None:
    """A bad line is a `!` notice."""
    assert client.handle_line("   ")
    assert client.handle_line("help")
    assert client.handle_line("sub bad/topic")
    assert client.handle_line("hello")
    assert link.calls == []
    assert display.notices[0] == HELP
    assert [notice[0] for notice in display.notices[1:]] == ["!", "!"]


def test_what_the_server_says_is_shown_escaped_like_a_body(
    client: ChatClient, display: RecordingDisplay
) -> None:
    """A node name, a close reason or an error reason could carry escape sequences too."""
    client.connected("evil\x1b]0;owned\x07:8080", ())
    client.disconnected("bye\r\n* connected to trusted", 1)
    client.refused("the server says", "bad_frame: \u202etxt.exe")
    client.publish_failed(NEWS, "hi", "rate_limited: \x1b[2J")
    client.ticked("2026\u200b")
    assert display.notices == [
        "* connected to evil\\x1b]0;owned\\x07:8080 as afrozalm",
        "* disconnected (bye\\r\\n* connected to trusted); retrying in 1.0 s",
        "! the server says: bad_frame: \\u202etxt.exe",
        '! message to news failed: rate_limited: \\x1b[2J: "hi"',
    ]
    assert display.ticks == ["* time 2026\\u200b"]


@pytest.mark.parametrize(
    ("connected", "pending", "warning"),
    [
        (False, 3, "! 3 messages not sent yet (not connected); quit again to drop them, or wait"),
        (True, 1, "! 1 message not sent yet (waiting for the server's ack); quit again to drop it, or wait"),
    ],
)
def test_quit_with_unsent_messages_warns_once_and_the_next_quit_leaves(
    client: ChatClient, link: FakeLink, display: RecordingDisplay, connected: bool, pending: int, warning: str
) -> None:
    """Nothing is lost silently: the first quit (or Ctrl-D, which is quit()) only says what would be."""
    link.connected, link.pending = connected, pending
    assert client.handle_line("quit")
    assert display.take_notices() == [warning]
    assert client.quit()
    assert display.notices == []


def test_the_quit_warning_holds_for_the_next_quit_only(
    client: ChatClient, link: FakeLink, display: RecordingDisplay
) -> None:
    """Another line in between, and the next quit warns again: there may be more to lose now."""
    link.pending = 2
    assert not client.quit()
    client.handle_line("topics")
    assert client.quit() is False
    client.handle_line("tpoics")
    assert client.quit() is False
    assert client.handle_line("")
    assert not client.handle_line("/quit")
    assert [notice[0] for notice in display.notices] == ["!", "*", "!", "!", "!"]


def test_quit_with_nothing_unsent_leaves_at_once(client: ChatClient, display: RecordingDisplay) -> None:
    assert not client.handle_line("quit")
    assert client.quit()
    assert display.notices == []


def test_unsub_of_a_topic_not_subscribed_says_so_and_sends_nothing(
    client: ChatClient, link: FakeLink, display: RecordingDisplay
) -> None:
    for connected in (True, False):
        link.connected = connected
        client.handle_line("unsub news")
    assert link.calls == []
    assert display.notices == ["* not subscribed to news"] * 2


def test_a_pub_command_is_confirmed_on_its_ack_and_an_attached_line_by_its_echo_only(
    client: ChatClient, link: FakeLink, display: RecordingDisplay
) -> None:
    """The link reports every ack; only those of `pub` commands are shown, each once."""
    client.handle_line("attach news")
    display.take_notices()
    client.handle_line("same words")
    client.handle_line("/pub news same words")
    client.handle_line("/pub sport same words")
    client.published(NEWS, "same words")
    client.published(NEWS, "same words")
    client.published(SPORT, "same words")
    assert display.notices == ["* published to news", "* published to sport"]


def test_a_pub_command_that_fails_is_reported_once_and_a_later_equal_ack_not_confirmed(
    client: ChatClient, display: RecordingDisplay
) -> None:
    client.handle_line("pub news hi")
    client.publish_failed(NEWS, "hi", "rate_limited: slow down")
    client.published(NEWS, "hi")
    assert display.notices == ['! message to news failed: rate_limited: slow down: "hi"']


def test_attach_to_a_new_topic_says_subscribed_then_attached_in_the_order_they_happen(
    client: ChatClient, link: FakeLink, display: RecordingDisplay
) -> None:
    """Attached at once (lines typed go there), said when the server's `subscribed` answer comes."""
    client.handle_line("attach news")
    assert client.attached == NEWS
    assert link.calls == [("subscribe", NEWS)]
    assert display.take_notices() == []
    client.subscribed(NEWS)
    client.subscribed(NEWS)
    assert display.notices == [
        "* subscribed to news",
        "* attached to news: what you type goes there; // detaches",
        "* subscribed to news",
    ]


def test_attach_answered_by_a_reconnect_rather_than_subscribed_is_said_after_the_connect(
    client: ChatClient, link: FakeLink, display: RecordingDisplay
) -> None:
    client.handle_line("attach news")
    client.disconnected("connection lost", 1)
    client.connected("laptop:8080", (NEWS,))
    assert display.notices[-2:] == [
        "* connected to laptop:8080 as afrozalm; subscribed to news",
        "* attached to news: what you type goes there; // detaches",
    ]


def test_attach_then_detach_before_the_answer_says_no_attached(
    client: ChatClient, display: RecordingDisplay
) -> None:
    client.handle_line("attach news")
    client.handle_line("//")
    client.subscribed(NEWS)
    assert display.notices == ["* detached from news", "* subscribed to news"]


def test_a_client_that_never_connected_says_once_connected_and_after_a_drop_once_back(
    client: ChatClient, link: FakeLink, display: RecordingDisplay
) -> None:
    link.connected = False
    client.handle_line("pub news one")
    client.handle_line("sub sport")
    client.connected("laptop:8080", ())
    client.disconnected("connection lost", 1)
    client.handle_line("pub news two")
    client.handle_line("sub chess")
    assert [notice for notice in display.notices if "once" in notice] == [
        "* queued: it will be sent once connected",
        "* sport will be subscribed once connected",
        "* queued: it will be sent once the connection is back",
        "* chess will be subscribed once the connection is back",
    ]


def test_started_says_where_the_transcript_is_and_how_to_follow_it(
    link: FakeLink, display: RecordingDisplay, tmp_path: Path
) -> None:
    """And, when another client of the uid holds `<uid>.mess`, that this one writes another file."""
    plain = ChatClient(Uid("afrozalm"), link, Transcript(Path("afrozalm.mess")), display)
    second = Transcript(Path("afrozalm+2.mess"), instead_of=Path("afrozalm.mess"))
    spaced = Transcript(Path("my chats/log.mess"))
    for transcript in (second, spaced):
        ChatClient(Uid("afrozalm"), link, transcript, display).started()
    plain.started()
    assert display.notices == [
        "* afrozalm.mess is in use by another client of afrozalm;"
        " transcript: afrozalm+2.mess (tail -f afrozalm+2.mess)",
        "* transcript: my chats/log.mess (tail -f 'my chats/log.mess')",
        "* transcript: afrozalm.mess (tail -f afrozalm.mess)",
    ]


def test_known_topics_are_the_links_then_those_seen_in_messages(client: ChatClient, link: FakeLink) -> None:
    client.handle_line("sub sport")
    for topic in (NEWS, SPORT, NEWS):
        client.received(
            Message(
                id="m-1",
                topic=topic,
                sender=Uid("mala"),
                body="hi",
                timestamp=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
    assert client.known_topics == (SPORT, NEWS)


def test_while_down_the_status_line_counts_down_to_the_next_attempt_and_says_why(
    client: ChatClient, display: RecordingDisplay, clock: Clock
) -> None:
    """One notice for the outage, then only the status line: said at each change, read with the time left."""
    client.connected("laptop:8080", ())
    assert client.status_line == ""
    client.disconnected("connection lost", 0.4)
    clock.now += 0.1
    assert client.status_line == "reconnecting in 0.3 s (attempt 1, connection lost)"
    clock.now += 0.3
    assert client.status_line == "connecting now (attempt 1, connection lost)"
    client.disconnected("cannot reach ws://h:1: connection refused", 3.2)
    client.disconnected("cannot reach ws://h:1: connection refused\x1b[2J", 4)
    assert (
        client.status_line
        == "reconnecting in 4.0 s (attempt 3, cannot reach ws://h:1: connection refused\\x1b[2J)"
    )
    client.connected("laptop:8080", ())
    assert client.status_line == ""
    assert display.notices == [
        "* connected to laptop:8080 as afrozalm",
        "* disconnected (connection lost); retrying in 0.4 s",
        "* connected to laptop:8080 as afrozalm",
    ]
    # The first failure is the notice's alone: a printed log would have it twice.
    assert display.statuses == [
        "",
        "reconnecting in 3.2 s (attempt 2, cannot reach ws://h:1: connection refused)",
        "reconnecting in 4.0 s (attempt 3, cannot reach ws://h:1: connection refused\\x1b[2J)",
        "",
    ]


@pytest.mark.parametrize("line", ["", "   ", "reconnect", "/reconnect"])
def test_enter_or_reconnect_while_down_retries_now(
    client: ChatClient, link: FakeLink, display: RecordingDisplay, line: str
) -> None:
    client.connected("laptop:8080", ())
    link.connected = False
    client.disconnected("connection lost", 30)
    display.take_notices()
    assert client.handle_line(line)
    assert link.calls == [("retry_now",)]
    assert client.status_line == "connecting now (attempt 1, connection lost)"
    assert display.statuses[-1] == client.status_line
    assert not client.waiting_to_retry
    assert display.notices == ([] if not line.strip() else ["* reconnecting now"])


def test_enter_while_connected_does_nothing_and_reconnect_says_so(
    client: ChatClient, link: FakeLink, display: RecordingDisplay
) -> None:
    client.handle_line("")
    client.handle_line("reconnect")
    assert link.calls == []
    assert display.notices == ["* already connected"]


@pytest.mark.parametrize("line", ["/pub news x", "x"])
def test_a_message_over_the_servers_limit_is_refused_before_it_is_sent(
    client: ChatClient, link: FakeLink, display: RecordingDisplay, line: str
) -> None:
    """The link says why; nothing is queued, and the line is quoted so that the user can shorten it."""
    client.handle_line("attach news")
    display.take_notices()
    link.too_long = (
        "too long: 70012 bytes, the server takes at most 65536 per message frame; nothing was sent"
    )
    client.handle_line(line)
    assert link.published == []
    assert display.notices == [f'! message to news failed: {link.too_long}: "x"']


@pytest.mark.parametrize("refusal", ["too-long", "queue-full"])
def test_a_line_refused_before_it_is_sent_leaves_an_equal_pub_waiting_for_its_ack_confirmed(
    client: ChatClient, link: FakeLink, display: RecordingDisplay, refusal: str
) -> None:
    """The refused line never reached the link: the ack that comes is the earlier pub's, and says so."""
    client.handle_line("pub news hi")
    if refusal == "too-long":
        link.too_long = "too long: 70012 bytes, the server takes at most 65536 per message frame"
    else:
        link.queue_size = 1
    client.handle_line("pub news hi")
    assert link.published == [(NEWS, "hi")]
    client.published(NEWS, "hi")
    assert display.notices[-1] == "* published to news"


def test_a_client_that_never_connected_counts_its_first_attempt(
    client: ChatClient, link: FakeLink, display: RecordingDisplay
) -> None:
    """The first report is of attempt 1 failing: the next is attempt 2."""
    link.connected = False
    client.disconnected("cannot reach ws://h:1: connection refused", 0.5)
    assert (
        client.status_line == "reconnecting in 0.5 s (attempt 2, cannot reach ws://h:1: connection refused)"
    )


@pytest.mark.parametrize("reported", [False, True], ids=["first-attempt", "after-a-wait"])
def test_while_an_attempt_is_under_way_reconnect_says_so_and_enter_does_nothing(
    client: ChatClient, link: FakeLink, display: RecordingDisplay, clock: Clock, reported: bool
) -> None:
    """No wait to end: the attempt under way is the reconnection; "reconnecting now" would mislead."""
    link.connected = False
    if reported:
        client.disconnected("connection lost", 0.4)
        clock.now += 0.4
        display.take_notices()
    client.handle_line("")
    client.handle_line("reconnect")
    assert link.calls == []
    assert display.notices == [f"* already connecting (attempt {2 if reported else 1})"]
