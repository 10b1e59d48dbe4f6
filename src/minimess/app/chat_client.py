"""The terminal client's use cases: act on typed lines, and report what the server link says."""

from __future__ import annotations

import shlex
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from minimess.app.client_commands import (
    HELP,
    Attach,
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
from minimess.app.connection_status import ConnectionStatus
from minimess.app.transcript import Transcript, gap_line, transcript_line
from minimess.app.visible_text import escape_text
from minimess.domain.model import Message, Topic, Uid


class LinkEvents(Protocol):
    """What a server link reports, on the event loop, as it happens."""

    def connected(self, node: str, topics: tuple[Topic, ...]) -> None: ...
    def disconnected(self, reason: str, retry_in: float) -> None: ...
    def received(self, message: Message) -> None: ...
    def subscribed(self, topic: Topic) -> None: ...
    def unsubscribed(self, topic: Topic) -> None: ...
    def refused(self, what: str, reason: str) -> None: ...
    def publish_failed(self, topic: Topic, body: str, reason: str) -> None: ...
    def published(self, topic: Topic, body: str) -> None:
        """A publish is published: the server acknowledged it, or its message came back first."""
        ...

    def ticked(self, timestamp: str) -> None: ...
    def missed(self, topic: Topic) -> None:
        """Messages of `topic` may have been published that the user will never receive."""
        ...


class Link(Protocol):
    """The client's connection to its server, kept up across server restarts.

    Every method returns at once; what happens on the wire is reported through LinkEvents.
    """

    @property
    def topics(self) -> tuple[Topic, ...]: ...
    @property
    def is_connected(self) -> bool: ...
    @property
    def pending(self) -> int:
        """Publishes not known to be published yet, queued or in flight: what closing now may lose."""
        ...

    @property
    def unsent(self) -> int:
        """Publishes never sent: what closing now loses for certain (the others are reported failed)."""
        ...

    def subscribe(self, topic: Topic) -> None: ...
    def unsubscribe(self, topic: Topic) -> None: ...
    def publish(self, topic: Topic, body: str) -> bool:
        """Queue a message; False when the queue of unsent lines is full (nothing queued)."""
        ...

    def oversize(self, topic: Topic, body: str) -> str | None:
        """Why a message this long cannot be sent (its frame is over the server's limit), or None."""
        ...

    def retry_now(self) -> None:
        """While waiting between connection attempts, end the wait; nothing while connected."""
        ...

    async def run(self, events: LinkEvents) -> None:
        """Connect, and reconnect whenever the connection drops, until close()."""
        ...

    def close(self) -> None: ...


class Display(Protocol):
    """Where the user reads: received messages, and notices about everything else."""

    def message(self, line: str) -> None: ...
    def notice(self, line: str) -> None: ...
    def tick(self, line: str) -> None: ...
    def status(self, line: str) -> None:
        """The one status line changed to `line` (connection state); "" while there is nothing to say.

        Said at every change but the first failure, which a notice has just said, and not at every
        step of a countdown: ChatClient.status_line reads it again, with the time left, for a
        display that shows it in place.
        """
        ...


class ChatClient:
    """One user's session: the attached topic, typed lines to the link, messages to the transcript."""

    def __init__(
        self,
        uid: Uid,
        link: Link,
        transcript: Transcript,
        display: Display,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.uid = uid
        self._link = link
        self._transcript = transcript
        self._display = display
        # When a gap line is written: it has no message timestamp of its own.
        self._now = now
        # Where plain lines go; survives reconnects because it lives here, not in the link.
        self.attached: Topic | None = None
        self._was_connected = False
        self._ever_connected = False
        # A topic attached to before its subscription was answered: "attached" is said after
        # "subscribed", in the order they happen.
        self._attaching: Topic | None = None
        # `pub` commands waiting for their ack, which is shown; an attached line's echo shows itself.
        self._confirming: Counter[tuple[Topic, str]] = Counter()
        # Quit was asked once while messages were unsent; the next quit drops them.
        self._quit_warned = False
        # Topics seen in messages, for completion besides the link's own.
        self._seen: dict[Topic, None] = {}
        # The one status line; the first failure after a connection (or the start) is a notice too.
        self._status = ConnectionStatus(clock)
        self._said_down = False

    @property
    def status_line(self) -> str:
        """The status line as of now, countdown included; "" while connected."""
        return self._status.line()

    @property
    def waiting_to_retry(self) -> bool:
        """Whether the link waits between attempts, a wait that Enter or `reconnect` would end."""
        return not self._link.is_connected and self._status.waiting

    @property
    def prompt(self) -> str:
        return f"[{self.attached}]> " if self.attached else "> "

    @property
    def known_topics(self) -> tuple[Topic, ...]:
        """The user's topics, then the others seen in messages: what completion offers."""
        return tuple(dict.fromkeys([*self._link.topics, *self._seen]))

    def started(self) -> None:
        """Say where the transcript is, and why it is not `<uid>.mess` when another client has that."""
        path = str(self._transcript.path)
        where = f"transcript: {path} (tail -f {shlex.quote(path)})"
        if self._transcript.instead_of is None:
            self._display.notice(f"* {where}")
        else:
            taken = self._transcript.instead_of
            self._display.notice(f"* {taken} is in use by another client of {self.uid}; {where}")

    def quit(self) -> bool:
        """Whether to quit now: not while messages are unsent, until asked a second time."""
        pending = self._link.pending
        if pending == 0 or self._quit_warned:
            return True
        self._quit_warned = True
        them = "them" if pending > 1 else "it"
        why = "not connected" if not self._link.is_connected else "waiting for the server's ack"
        self._display.notice(
            f"! {_count(pending, 'message')} not sent yet ({why}); quit again to drop {them}, or wait"
        )
        return False

    def handle_line(self, line: str) -> bool:
        """Act on one typed line; False when the user asked to quit."""
        try:
            command = parse_line(line, self.attached)
        except CommandError as error:
            # A warning about unsent messages holds for the quit right after it only; a mistyped
            # line in between counts too: the user may not have read the warning.
            self._quit_warned = False
            self._display.notice(f"! {error}")
            return True
        if not isinstance(command, Quit | None):
            self._quit_warned = False
        match command:
            case None:
                # Enter on an empty line is what a user tries first to get the connection back.
                if self.waiting_to_retry:
                    self._retry_now()
            case Reconnect():
                if self._link.is_connected:
                    self._display.notice("* already connected")
                elif self.waiting_to_retry:
                    self._display.notice("* reconnecting now")
                    self._retry_now()
                else:
                    # An attempt is under way: starting another would only throw its progress away.
                    self._display.notice(f"* already connecting (attempt {self._status.attempt})")
            case Quit():
                return not self.quit()
            case Help():
                self._display.notice(HELP)
            case ListTopics():
                self._list_topics()
            case Subscribe(topic):
                self._subscribe(topic)
            case Unsubscribe(topic):
                self._unsubscribe(topic)
            case Attach(topic):
                self.attached = topic
                if topic not in self._link.topics and self._link.is_connected:
                    # Said once the server answers `subscribed`, after that: the order they happen in.
                    self._attaching = topic
                    self._link.subscribe(topic)
                else:
                    if topic not in self._link.topics:
                        self._subscribe(topic)
                    self._say_attached(topic)
            case Detach():
                if self.attached is None:
                    self._display.notice("* not attached")
                else:
                    self._display.notice(f"* detached from {self.attached}")
                    self.attached = None
            case Publish(topic, body, by_command=by_command):
                if (too_long := self._link.oversize(topic, body)) is not None:
                    self._say_failed(topic, body, too_long)
                    return True
                if not self._link.publish(topic, body):
                    self._say_failed(topic, body, "too many lines waiting to be sent")
                    return True
                if by_command:
                    self._confirming[topic, body] += 1
                if not self._link.is_connected:
                    self._display.notice(f"* queued: it will be sent {self._once_connected}")
        return True

    @property
    def _once_connected(self) -> str:
        return "once the connection is back" if self._ever_connected else "once connected"

    def _retry_now(self) -> None:
        self._link.retry_now()
        self._status.retrying_now()
        self._display.status(self.status_line)

    def _subscribe(self, topic: Topic) -> None:
        self._link.subscribe(topic)
        if not self._link.is_connected:
            self._display.notice(f"* {topic} will be subscribed {self._once_connected}")

    def _unsubscribe(self, topic: Topic) -> None:
        if self.attached == topic:
            self.attached = None
        if topic not in self._link.topics:
            self._display.notice(f"* not subscribed to {topic}")
            return
        self._link.unsubscribe(topic)
        if not self._link.is_connected:
            self._display.notice(f"* unsubscribed from {topic}")

    def _say_attached(self, topic: Topic) -> None:
        self._attaching = None
        self._display.notice(f"* attached to {topic}: what you type goes there; // detaches")

    def _list_topics(self) -> None:
        topics = ", ".join(str(topic) for topic in self._link.topics) or "none"
        attached = f"; attached to {self.attached}" if self.attached else ""
        self._display.notice(f"* topics: {topics}{attached}")

    # LinkEvents

    def connected(self, node: str, topics: tuple[Topic, ...]) -> None:
        verb = "resubscribed" if self._ever_connected else "subscribed"
        subscribed = f"; {verb} to {', '.join(str(t) for t in topics)}" if topics else ""
        # What the server says is shown escaped, like message bodies: it is not this user's text.
        self._display.notice(f"* connected to {escape_text(node)} as {self.uid}{subscribed}")
        self._was_connected = self._ever_connected = True
        if self._attaching is not None and self._attaching == self.attached and self.attached in topics:
            # The connection dropped before the `subscribed` answer; this one's URL subscribed it.
            self._say_attached(self.attached)
        self._said_down = False
        self._status.up()
        self._display.status(self.status_line)

    def disconnected(self, reason: str, retry_in: float) -> None:
        # One notice where the connection went, in the conversation; then only the status line.
        self._status.down(reason, retry_in)
        if not self._said_down:
            state = "disconnected" if self._was_connected else "not connected"
            self._display.notice(f"* {state} ({escape_text(reason)}); retrying in {retry_in:.1f} s")
            self._said_down = True
        else:
            # Not with the notice: that says the same, and a printed log would have it twice.
            self._display.status(self.status_line)
        self._was_connected = False

    def received(self, message: Message) -> None:
        self._seen[message.topic] = None
        line = transcript_line(message)
        self._transcript.append(line)
        self._display.message(line)

    def missed(self, topic: Topic) -> None:
        # In the transcript too, in its place among the messages: a `tail -f` reader sees the gap.
        self._transcript.append(gap_line(topic, self._now()))
        self._display.notice(f"* may have missed messages on {topic}")

    def subscribed(self, topic: Topic) -> None:
        self._display.notice(f"* subscribed to {topic}")
        if self._attaching == topic and self.attached == topic:
            self._say_attached(topic)

    def unsubscribed(self, topic: Topic) -> None:
        self._display.notice(f"* unsubscribed from {topic}")

    def refused(self, what: str, reason: str) -> None:
        if self.attached is not None and self.attached not in self._link.topics:
            self.attached = None
        self._display.notice(f"! {escape_text(what)}: {escape_text(reason)}")

    def publish_failed(self, topic: Topic, body: str, reason: str) -> None:
        self._settle(topic, body)
        self._say_failed(topic, body, reason)

    def _say_failed(self, topic: Topic, body: str, reason: str) -> None:
        """The `!` line of a message not published. A line refused here, never given to the link,
        says only this: an equal `pub` waiting for its ack is another message, still to be confirmed."""
        self._display.notice(f'! message to {topic} failed: {escape_text(reason)}: "{_excerpt(body)}"')

    def published(self, topic: Topic, body: str) -> None:
        if self._settle(topic, body):
            self._display.notice(f"* published to {topic}")

    def _settle(self, topic: Topic, body: str) -> bool:
        """Whether the publish of `body` to `topic` that the link reports came from a `pub` command."""
        if self._confirming[topic, body] == 0:
            return False
        # By value: the link does not say which of several equal messages it is, nor need it.
        self._confirming[topic, body] -= 1
        if self._confirming[topic, body] == 0:
            del self._confirming[topic, body]
        return True

    def ticked(self, timestamp: str) -> None:
        self._display.tick(f"* time {escape_text(timestamp)}")


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}" if number == 1 else f"{number} {thing}s"


def _excerpt(body: str, limit: int = 60) -> str:
    text = escape_text(body)
    return text if len(text) <= limit else text[: limit - 1] + "…"
