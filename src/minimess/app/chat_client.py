"""The terminal client's use cases: act on typed lines, and report what the server link says."""

from __future__ import annotations

import time
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

        Said at every change, not at every step of a countdown: ChatClient.status_line reads it
        again, with the time left, for a display that shows it in place.
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
        # The one status line; the first failure after a connection (or the start) is a notice too.
        self._status = ConnectionStatus(clock)
        self._said_down = False

    @property
    def status_line(self) -> str:
        """The status line as of now, countdown included; "" while connected."""
        return self._status.line()

    @property
    def prompt(self) -> str:
        return f"[{self.attached}]> " if self.attached else "> "

    def handle_line(self, line: str) -> bool:
        """Act on one typed line; False when the user asked to quit."""
        try:
            command = parse_line(line, self.attached)
        except CommandError as error:
            self._display.notice(f"! {error}")
            return True
        match command:
            case None:
                # Enter on an empty line is what a user tries first to get the connection back.
                if not self._link.is_connected:
                    self._retry_now()
            case Reconnect():
                if self._link.is_connected:
                    self._display.notice("* already connected")
                else:
                    self._display.notice("* reconnecting now")
                    self._retry_now()
            case Quit():
                return False
            case Help():
                self._display.notice(HELP)
            case ListTopics():
                self._list_topics()
            case Subscribe(topic):
                self._subscribe(topic)
            case Unsubscribe(topic):
                if self.attached == topic:
                    self.attached = None
                self._link.unsubscribe(topic)
                if not self._link.is_connected:
                    self._display.notice(f"* unsubscribed from {topic}")
            case Attach(topic):
                if topic not in self._link.topics:
                    self._subscribe(topic)
                self.attached = topic
                self._display.notice(f"* attached to {topic}: what you type goes there; // detaches")
            case Detach():
                if self.attached is None:
                    self._display.notice("* not attached")
                else:
                    self._display.notice(f"* detached from {self.attached}")
                    self.attached = None
            case Publish(topic, body):
                if (too_long := self._link.oversize(topic, body)) is not None:
                    self.publish_failed(topic, body, too_long)
                elif not self._link.publish(topic, body):
                    self.publish_failed(topic, body, "too many lines waiting to be sent")
                elif not self._link.is_connected:
                    self._display.notice("* queued: it will be sent once the connection is back")
        return True

    def _retry_now(self) -> None:
        self._link.retry_now()
        self._status.retrying_now()
        self._display.status(self.status_line)

    def _subscribe(self, topic: Topic) -> None:
        self._link.subscribe(topic)
        if not self._link.is_connected:
            self._display.notice(f"* {topic} will be subscribed once the connection is back")

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
        self._said_down = False
        self._status.up()
        self._display.status(self.status_line)

    def disconnected(self, reason: str, retry_in: float) -> None:
        # One notice where the connection went, in the conversation; then only the status line.
        if not self._said_down:
            state = "disconnected" if self._was_connected else "not connected"
            self._display.notice(f"* {state} ({escape_text(reason)}); retrying in {retry_in:.1f} s")
            self._said_down = True
        self._was_connected = False
        self._status.down(reason, retry_in)
        self._display.status(self.status_line)

    def received(self, message: Message) -> None:
        line = transcript_line(message)
        self._transcript.append(line)
        self._display.message(line)

    def missed(self, topic: Topic) -> None:
        # In the transcript too, in its place among the messages: a `tail -f` reader sees the gap.
        self._transcript.append(gap_line(topic, self._now()))
        self._display.notice(f"* may have missed messages on {topic}")

    def subscribed(self, topic: Topic) -> None:
        self._display.notice(f"* subscribed to {topic}")

    def unsubscribed(self, topic: Topic) -> None:
        self._display.notice(f"* unsubscribed from {topic}")

    def refused(self, what: str, reason: str) -> None:
        if self.attached is not None and self.attached not in self._link.topics:
            self.attached = None
        self._display.notice(f"! {escape_text(what)}: {escape_text(reason)}")

    def publish_failed(self, topic: Topic, body: str, reason: str) -> None:
        self._display.notice(f'! message to {topic} failed: {escape_text(reason)}: "{_excerpt(body)}"')

    def ticked(self, timestamp: str) -> None:
        self._display.tick(f"* time {escape_text(timestamp)}")


def _excerpt(body: str, limit: int = 60) -> str:
    text = escape_text(body)
    return text if len(text) <= limit else text[: limit - 1] + "…"
